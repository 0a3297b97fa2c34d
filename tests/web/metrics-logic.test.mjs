// The local metrics dashboard's logic (local/assets/metrics.js) without a browser: which
// metrics each widget draws, per-bucket sums over the last ten minutes, scaling, SVG paths,
// and how numbers and percentiles are written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import metrics from '../../local/assets/metrics.js';

const {
  BUCKETS, WIDGETS, bucketTimes, byFunction, customNamespaces, droppedChunks, formatClock, formatCount, formatMs, isCustom,
  legendText, linePath, markerPath, matches, niceMax, percentile, perBucket, pick, timeTicks, total, widgetModel,
} = metrics;

const NOW = 1765150003000; // 3 s into a bucket
const LAST = 1765150000000; // that bucket's start
const B = 10_000;

const metric = (namespace, name, dimensions, points, extra = {}) => ({
  namespace, name, unit: 'Count', dimensions,
  sum: points.reduce((s, p) => s + p.sum, 0), count: points.reduce((s, p) => s + p.count, 0),
  min: null, max: null, p50: null, p99: null, points, ...extra,
});
const point = (t, sum, count = 1, max = sum) => ({ t, sum, count, min: 0, max });
const onMessage = { FunctionName: 'OnMessageFunction', Stage: 'Test' };
const fanout = { FunctionName: 'FanoutFunction', Stage: 'Test' };

function sample() {
  return {
    now: NOW,
    bucketSeconds: 10,
    metrics: [
      metric('ServerlessChat', 'MessagesKept', onMessage, [point(LAST - 2 * B, 1), point(LAST, 2, 2)]),
      metric('ServerlessChat', 'Deliveries', onMessage, [point(LAST, 4, 2)]),
      metric('ServerlessChat', 'Deliveries', fanout, [point(LAST - B, 3), point(LAST, 1)]),
      metric('ServerlessChat', 'FanoutDuration', onMessage, [point(LAST, 9, 2, 6)], { unit: 'Milliseconds', p50: 3, p99: 6 }),
      metric('ServerlessChat', 'ColdStarts', onMessage, [point(LAST, 1)]),
      metric('AWS/ApiGateway', 'ConnectCount', { ApiId: 'abc123', Stage: 'Test' }, [point(LAST - B, 2, 2)]),
      metric('AWS/ApiGateway', 'IntegrationError', { ApiId: 'abc123', Stage: 'Test' }, [point(LAST, 3, 3)]),
      metric('AWS/Lambda', 'Invocations', { FunctionName: 'OnDisconnectFunction' }, [point(LAST, 1)]),
      metric('AWS/Lambda', 'Invocations', { FunctionName: 'OnMessageFunction' }, [point(LAST, 3, 3)]),
      metric('AWS/Lambda', 'Duration', { FunctionName: 'OnMessageFunction' }, [point(LAST - B, 40.5, 3, 20)],
        { unit: 'Milliseconds', p50: 12.1, p99: 20, max: 20 }),
      metric('AWS/Lambda', 'Duration', { FunctionName: 'ConnectFunction' }, [point(LAST, 2.5, 1, 2.5)],
        { unit: 'Milliseconds', p50: 2.5, p99: 2.5, max: 2.5 }),
      metric('AWS/Lambda', 'Errors', { FunctionName: 'OnMessageFunction' }, [point(LAST, 0, 3)]),
      metric('AWS/Lambda', 'Errors', { FunctionName: 'ConnectFunction' }, [point(LAST, 1)]),
      // The chat's MessagesKept under AWS's namespace is not the chat's.
      metric('AWS/Other', 'MessagesKept', {}, [point(LAST, 100)]),
    ],
    onFailure: { DroppedChunksQueue: 2 },
  };
}

const model = (key, data = sample()) => widgetModel(WIDGETS.find((w) => w.key === key), data);

test('the widgets are the dashboard\'s, titled as it titles them', () => {
  assert.deepEqual(WIDGETS.map((w) => w.title), ['Connections', 'Messages and deliveries', 'Fan-out duration',
    'Gone, throttled, undelivered', 'Authorizer', 'History reads and chunks', 'Function durations', 'Cold starts and errors']);
  assert.equal(new Set(WIDGETS.map((w) => w.key)).size, WIDGETS.length, 'keys are unique');
  assert.deepEqual(WIDGETS.find((w) => w.key === 'messages').series.map((s) => s.label), ['MessagesKept', 'Deliveries']);
});

test('any namespace but AWS/… is the chat\'s own, whatever it is called', () => {
  assert.equal(isCustom({ namespace: 'ServerlessChat' }), true);
  assert.equal(isCustom({ namespace: 'Chat' }), true);
  assert.equal(isCustom({ namespace: 'AWS/Lambda' }), false);
  const renamed = sample();
  for (const m of renamed.metrics) if (m.namespace === 'ServerlessChat') m.namespace = 'MyChat';
  assert.equal(model('messages', renamed).series[0].total, 3);
  assert.deepEqual(customNamespaces(renamed), ['MyChat']);
  assert.equal(matches({ namespace: 'AWS/Other', name: 'MessagesKept' }, { custom: true, name: 'MessagesKept' }), false);
});

test('buckets are the last ten minutes, oldest first, ending with the one now falls in', () => {
  const times = bucketTimes(NOW, B);
  assert.equal(times.length, BUCKETS);
  assert.equal(times.at(-1), LAST);
  assert.equal(times[0], LAST - 59 * B);
  assert.ok(times.every((t, i) => i === 0 || t - times[i - 1] === B));
});

test('per-bucket values add up every dimension; sums fill gaps with 0, max and mean leave them null', () => {
  const times = bucketTimes(NOW, B);
  const deliveries = pick(sample().metrics, { custom: true, name: 'Deliveries' });
  assert.equal(deliveries.length, 2);
  const sums = perBucket(deliveries, times, B);
  assert.deepEqual(sums.slice(-3), [0, 3, 5]);
  assert.equal(sums.reduce((a, b) => a + b, 0), 8);
  const [duration] = pick(sample().metrics, { namespace: 'AWS/Lambda', name: 'Duration', functionName: /onmessage/i });
  assert.deepEqual(perBucket([duration], times, B, 'max').slice(-3), [null, 20, null]);
  assert.deepEqual(perBucket([duration], times, B, 'mean').slice(-2), [13.5, null]);
  // Points outside the window (older than ten minutes, or not yet begun) are left out.
  const stray = metric('C', 'M', {}, [point(LAST - 60 * B, 7), point(LAST + B, 7), point(LAST + 5, 1)]);
  assert.deepEqual(perBucket([stray], times, B).filter((v) => v), [1]);
});

test('a series\' total is the sum field over its dimensions', () => {
  const messages = model('messages');
  assert.deepEqual(messages.series.map((s) => [s.label, s.total, s.buckets]), [['MessagesKept', 3, 2], ['Deliveries', 8, 2]]);
  assert.equal(messages.empty, false);
  assert.equal(messages.yMax, 5);
  assert.equal(total([]), 0);
});

test('connections: $connect is API Gateway\'s ConnectCount, $disconnect the disconnect function\'s invocations', () => {
  const connections = model('connections');
  assert.deepEqual(connections.series.map((s) => [s.label, s.total]),
    [['$connect', 2], ['$disconnect', 1], ['integration 4XX/5XX', 3], ['execution errors', 0]]);
});

test('a widget without any of its metrics is empty; one with some shows the rest at 0', () => {
  const failures = model('failures');
  assert.equal(failures.empty, true);
  assert.deepEqual(failures.series.map((s) => s.label), ['Gone', 'Pruned', 'Throttled', 'Undelivered', 'RateLimited']);
  assert.equal(model('authorizer').empty, true);
  assert.deepEqual(model('authorizer').series.map((s) => s.label), ['AuthorizerAllows', 'AuthorizerDenies', 'AuthorizerErrors', 'Lambda errors (errors + crashes)']);
  const empty = widgetModel(WIDGETS[1], { now: NOW, bucketSeconds: 10, metrics: [] });
  assert.equal(empty.empty, true);
  assert.equal(empty.yMax, 1);
  assert.equal(widgetModel(WIDGETS[1], null).empty, true, 'no JSON at all');
  const cold = model('coldstarts');
  assert.equal(cold.empty, false);
  assert.deepEqual(cold.series.map((s) => [s.label, s.total]), [['ColdStarts', 1], ['Errors', 1], ['Throttles', 0]]);
});

test('duration widgets draw one line per function, with its p50 and p99, and a table', () => {
  const durations = model('durations');
  assert.equal(durations.how, 'max');
  assert.deepEqual(durations.series.map((s) => [s.label, s.p50, s.p99, s.count]),
    [['ConnectFunction', 2.5, 2.5, 1], ['OnMessageFunction', 12.1, 20, 3]]);
  assert.equal(durations.yMax, 20);
  assert.deepEqual(durations.table.head, ['Function', 'n', 'p50', 'p99', 'max']);
  assert.deepEqual(durations.table.rows[1], ['OnMessageFunction', '3', '12.1 ms', '20 ms', '20 ms']);
  const fan = model('fanout');
  assert.deepEqual(fan.series.map((s) => [s.label, s.p50, s.p99]), [['OnMessageFunction', 3, 6]]);
  assert.equal(legendText(fan.series[0], 'max'), 'p50 3 ms · p99 6 ms · n 2');
  assert.equal(legendText(model('messages').series[0], 'sum'), '3');
});

test('cold starts and errors are tabled per function', () => {
  const cold = model('coldstarts');
  assert.deepEqual(cold.table.head, ['Function', 'ColdStarts', 'Errors', 'Throttles']);
  assert.deepEqual(cold.table.rows, [['ConnectFunction', '0', '1', '0'], ['OnMessageFunction', '1', '0', '0']]);
});

test('percentiles of several metrics are the highest (an upper bound); none is null', () => {
  assert.equal(percentile([{ p99: 3 }, { p99: 8 }, { p99: null }], 'p99'), 8);
  assert.equal(percentile([{ p50: null }], 'p50'), null);
  assert.deepEqual(byFunction([{ name: 'D', dimensions: { FunctionName: 'b' } }, { name: 'D', dimensions: { FunctionName: 'a' } },
    { name: 'D', dimensions: {} }]).map((g) => g.label), ['D', 'a', 'b']);
});

test('dropped chunks come from onFailure', () => {
  assert.equal(model('history').dropped, 2);
  assert.equal(droppedChunks({}), 0, 'a destination that holds nothing is not listed');
  assert.equal(droppedChunks({ DroppedChunksQueue: 1, OtherQueue: 5 }), 1);
  assert.equal(droppedChunks({ FailuresQueue: 4 }), 4, 'the one destination, whatever its name');
  assert.equal(droppedChunks(undefined), null);
  assert.equal(model('messages').dropped, undefined, 'only the history widget shows it');
});

test('the y axis goes to 1, 2 or 5 times a power of ten', () => {
  assert.deepEqual([0, -1, NaN, 0.3, 1, 1.5, 3, 7, 10, 11, 45, 99, 20, 1234].map(niceMax),
    [1, 1, 1, 0.5, 1, 2, 5, 10, 10, 20, 50, 100, 20, 2000]);
});

test('paths spread values across the box, 0 at the bottom, breaking at gaps and dotting lone points', () => {
  const box = { left: 0, top: 0, width: 100, height: 50 };
  assert.equal(linePath([0, 5, 10], box, 10), 'M0 50 L50 25 L100 0');
  assert.equal(linePath([1, null, 2, 2, null], box, 2), 'M0 25 h0 M50 0 L75 0');
  assert.equal(linePath([20], box, 10), 'M50 0 h0', 'clamped to the top, one point in the middle');
  assert.equal(linePath([null, null], box, 1), '');
  assert.equal(linePath([1 / 3, 0], { left: 48, top: 8, width: 544, height: 134 }, 1), 'M48 97.3 L592 142');
  assert.equal(markerPath([1, null, 2], box, 2), 'M0 25 h0 M100 0 h0');
  assert.equal(markerPath([null], box, 2), '');
});

test('numbers and durations are written for people', () => {
  assert.deepEqual([4.5, 12.1, 20, 250, 0.123, 0, 1234, 999.7, 61000, 0.001, null, undefined, NaN].map(formatMs),
    ['4.5 ms', '12.1 ms', '20 ms', '250 ms', '0.123 ms', '0 ms', '1.23 s', '1 s', '61 s', '<0.01 ms', '–', '–', '–']);
  assert.deepEqual([3, 0, 2.5, 1 / 3, null].map(formatCount), ['3', '0', '2.5', '0.33', '–']);
  const t = new Date(2025, 0, 2, 9, 5).getTime();
  assert.equal(formatClock(t), '09:05');
  assert.equal(formatClock(t + 7000, true), '09:05:07');
});

test('the x axis is labelled on whole two-minute marks', () => {
  const times = bucketTimes(NOW, B);
  const ticks = timeTicks(times);
  assert.equal(ticks.length, 5);
  assert.ok(ticks.every((i) => times[i] % 120_000 === 0));
  assert.deepEqual(timeTicks([0, 10_000, 120_000], 120_000), [0, 2]);
});
