// chat-local's metrics dashboard (/@local/metrics): polls /@local/metrics.json every 2 s and
// draws the CloudWatch dashboard's widgets as inline SVG. A classic script: in a browser it
// builds the page; under node (`module` defined) it only exports its pure functions, which
// tests/web/metrics-logic.test.mjs tests. Data reaches the DOM through textContent and
// attributes only, never as markup.
(function () {
  'use strict';

  const JSON_URL = '/@local/metrics.json';
  const POLL_MS = 2000;
  /** Buckets drawn: ten minutes of 10-second buckets. */
  const BUCKETS = 60;
  /** An x-axis label every this many milliseconds of wall-clock time. */
  const TICK_MS = 2 * 60 * 1000;
  const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d'];
  /** The chart's drawing box inside its 600 × 170 viewBox (room left and below for labels). */
  const VIEW = { width: 600, height: 170 };
  const BOX = { left: 48, top: 8, width: 544, height: 134 };

  /** A custom (the chat's own) metric is one in any namespace but AWS's. */
  const custom = (name) => ({ label: name, select: { custom: true, name } });
  const aws = (namespace, name, label = name, functionName = null) => ({ label, select: { namespace, name, functionName } });

  /**
   * The widgets, as the template's CloudWatch dashboard has them. `series` are fixed lines;
   * `perFunction` makes one line per FunctionName of the metrics it selects. Duration widgets
   * chart each bucket's max and show p50/p99; the others chart each bucket's sum.
   */
  const WIDGETS = [
    { key: 'connections', title: 'Connections',
      series: [aws('AWS/ApiGateway', 'ConnectCount', '$connect'), aws('AWS/Lambda', 'Invocations', '$disconnect', /disconnect/i),
        aws('AWS/ApiGateway', 'IntegrationError', 'integration 4XX/5XX'), aws('AWS/ApiGateway', 'ExecutionError', 'execution errors')] },
    { key: 'messages', title: 'Messages and deliveries', series: ['MessagesKept', 'Deliveries'].map(custom) },
    { key: 'fanout', title: 'Fan-out duration', durations: true, perFunction: { custom: true, name: 'FanoutDuration' } },
    { key: 'failures', title: 'Gone, throttled, undelivered',
      series: ['Gone', 'Pruned', 'Throttled', 'Undelivered', 'RateLimited'].map(custom) },
    { key: 'authorizer', title: 'Authorizer', series: [...['AuthorizerAllows', 'AuthorizerDenies', 'AuthorizerErrors'].map(custom),
      aws('AWS/Lambda', 'Errors', 'Lambda errors (errors + crashes)', /authorizer/i)] },
    { key: 'history', title: 'History reads and chunks', series: ['HistoryReads', 'ChunksHandedOn'].map(custom), dropped: true },
    { key: 'durations', title: 'Function durations', durations: true, perFunction: { namespace: 'AWS/Lambda', name: 'Duration' } },
    { key: 'coldstarts', title: 'Cold starts and errors',
      series: [custom('ColdStarts'), aws('AWS/Lambda', 'Errors'), aws('AWS/Lambda', 'Throttles')], perFunctionTable: true },
  ];

  // ---- Pure logic ----

  const isCustom = (metric) => !String(metric?.namespace ?? '').startsWith('AWS/');
  const functionOf = (metric) => metric?.dimensions?.FunctionName ?? '';
  const finite = (v) => typeof v === 'number' && Number.isFinite(v);
  const add = (sum, v) => sum + (finite(v) ? v : 0);

  /** Whether `metric` is one `select` names (`custom` or `namespace`, `name`, a FunctionName pattern). */
  function matches(metric, select) {
    if (!metric || metric.name !== select.name) return false;
    if (select.custom ? !isCustom(metric) : metric.namespace !== select.namespace) return false;
    return !select.functionName || select.functionName.test(functionOf(metric));
  }

  const pick = (metrics, select) => metrics.filter((m) => matches(m, select));

  /** The start times of the `count` buckets ending with the one `now` falls in, oldest first. */
  function bucketTimes(now, bucketMs, count = BUCKETS) {
    const last = Math.floor(now / bucketMs) * bucketMs;
    return Array.from({ length: count }, (_, i) => last - (count - 1 - i) * bucketMs);
  }

  /**
   * One value per bucket of `times` over `metrics`' points: 'sum' adds their sums (a bucket
   * without points is 0); 'max' and 'mean' leave such a bucket null (a gap in the line).
   */
  function perBucket(metrics, times, bucketMs, how = 'sum') {
    const sums = times.map(() => 0);
    const counts = times.map(() => 0);
    const maxes = times.map(() => null);
    for (const metric of metrics) {
      for (const point of metric.points ?? []) {
        const i = Math.floor((point.t - times[0]) / bucketMs);
        if (!(i >= 0 && i < times.length)) continue;
        sums[i] = add(sums[i], point.sum);
        counts[i] = add(counts[i], point.count);
        if (finite(point.max)) maxes[i] = maxes[i] === null ? point.max : Math.max(maxes[i], point.max);
      }
    }
    if (how === 'max') return maxes;
    if (how === 'mean') return sums.map((s, i) => (counts[i] > 0 ? s / counts[i] : null));
    return sums;
  }

  /** The `sum` fields added up: a series' total over every dimension. */
  const total = (metrics) => metrics.reduce((s, m) => add(s, m.sum), 0);
  const countOf = (metrics) => metrics.reduce((s, m) => add(s, m.count), 0);

  /**
   * A percentile (`p50`, `p99`) of several metrics: one's own, or — percentiles do not add —
   * the highest of theirs (an upper bound); null when none has one.
   */
  function percentile(metrics, key) {
    const values = metrics.map((m) => m[key]).filter(finite);
    return values.length ? Math.max(...values) : null;
  }

  /** `metrics` grouped by FunctionName, in name order: [{ label, metrics }]. */
  function byFunction(metrics) {
    const groups = new Map();
    for (const metric of metrics) {
      const name = functionOf(metric) || metric.name;
      if (!groups.has(name)) groups.set(name, []);
      groups.get(name).push(metric);
    }
    return [...groups.keys()].sort().map((label) => ({ label, metrics: groups.get(label) }));
  }

  /** A y-axis maximum at or above `v`: 1, 2 or 5 times a power of ten (1 for nothing). */
  function niceMax(v) {
    if (!(finite(v) && v > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(v));
    for (const step of [1, 2, 5, 10]) {
      const nice = Number((step * power).toPrecision(12));
      if (nice >= v) return nice;
    }
    return 10 * power;
  }

  const round = (v) => Math.round(v * 10) / 10;

  /** Where value `v` at index `i` of `n` goes in `box`: 0 at its bottom, `yMax` (and above) at its top. */
  function place(i, n, v, box, yMax) {
    const x = round(box.left + (n === 1 ? box.width / 2 : (i * box.width) / (n - 1)));
    const y = round(box.top + box.height - (Math.min(Math.max(v, 0), yMax) / yMax) * box.height);
    return `${x} ${y}`;
  }

  /**
   * An SVG path through `values` spread evenly across `box`; a null breaks the line, and a
   * point alone is drawn as a dot (`h0`: a zero-length stroke, which round caps show).
   */
  function linePath(values, box, yMax) {
    const parts = [];
    let run = 0;
    const close = () => { if (run === 1) parts.push('h0'); run = 0; };
    values.forEach((v, i) => {
      if (!finite(v)) return close();
      parts.push(`${run ? 'L' : 'M'}${place(i, values.length, v, box, yMax)}`);
      run += 1;
    });
    close();
    return parts.join(' ');
  }

  /** A dot at each value of `values` (as `linePath` places them). */
  const markerPath = (values, box, yMax) =>
    values.flatMap((v, i) => (finite(v) ? [`M${place(i, values.length, v, box, yMax)} h0`] : [])).join(' ');

  /** Up to three significant digits, without trailing zeros. */
  const digits = (v) => String(Number(v.toPrecision(3)));

  /** A duration in milliseconds for people: "4.5 ms", "250 ms", "1.23 s"; "–" for none. */
  function formatMs(v) {
    if (!finite(v)) return '–';
    if (v >= 999.5) return `${digits(v / 1000)} s`;
    if (v > 0 && v < 0.01) return '<0.01 ms';
    return `${digits(v)} ms`;
  }

  /** A count: whole numbers as they are, others to two decimals; "–" for none. */
  const formatCount = (v) => (!finite(v) ? '–' : Number.isInteger(v) ? String(v) : String(Number(v.toFixed(2))));

  /** A time as the local HH:MM, or HH:MM:SS with `seconds`. */
  function formatClock(t, seconds = false) {
    const date = new Date(t);
    const parts = [date.getHours(), date.getMinutes(), ...(seconds ? [date.getSeconds()] : [])];
    return parts.map((n) => String(n).padStart(2, '0')).join(':');
  }

  /** The indices of `times` that get an x-axis label: those on a whole `everyMs`. */
  const timeTicks = (times, everyMs = TICK_MS) => times.flatMap((t, i) => (t % everyMs === 0 ? [i] : []));

  /**
   * The records the dropped-chunks destination holds: of `onFailure`'s destinations those
   * named like chunks (all of them when none is); null when the JSON has no `onFailure`.
   */
  function droppedChunks(onFailure) {
    if (!onFailure || typeof onFailure !== 'object') return null;
    const entries = Object.entries(onFailure).filter(([, n]) => finite(n));
    const chunky = entries.filter(([name]) => /chunk/i.test(name));
    return (chunky.length ? chunky : entries).reduce((s, [, n]) => s + n, 0);
  }

  /** The namespaces of the chat's own metrics in `data`, sorted. */
  const customNamespaces = (data) =>
    [...new Set((data?.metrics ?? []).filter(isCustom).map((m) => m.namespace))].sort();

  /**
   * What one widget shows for `data` (the metrics JSON): its series (label, per-bucket values,
   * total, count, p50, p99, buckets with data), the y maximum, whether it is empty (no metric
   * of its exists yet), a table (head and rows of text) and the dropped-chunk count.
   */
  function widgetModel(spec, data) {
    const metrics = Array.isArray(data?.metrics) ? data.metrics : [];
    const bucketMs = (finite(data?.bucketSeconds) && data.bucketSeconds > 0 ? data.bucketSeconds : 10) * 1000;
    const times = bucketTimes(finite(data?.now) ? data.now : Date.now(), bucketMs);
    const how = spec.durations ? 'max' : 'sum';
    const groups = spec.perFunction
      ? byFunction(pick(metrics, spec.perFunction))
      : spec.series.map(({ label, select }) => ({ label, metrics: pick(metrics, select) }));
    const series = groups.map(({ label, metrics: ms }) => {
      const values = perBucket(ms, times, bucketMs, how);
      return {
        label,
        values,
        total: total(ms),
        count: countOf(ms),
        p50: percentile(ms, 'p50'),
        p99: percentile(ms, 'p99'),
        buckets: perBucket(ms, times, bucketMs, 'max').filter((v) => v !== null).length,
      };
    });
    const highest = Math.max(0, ...series.flatMap((s) => s.values.filter(finite)));
    const model = {
      key: spec.key, title: spec.title, how, times, series,
      yMax: niceMax(highest),
      empty: groups.every((g) => g.metrics.length === 0),
      table: null,
      dropped: spec.dropped ? droppedChunks(data?.onFailure) : undefined,
    };
    if (spec.durations && series.length) {
      model.table = {
        head: ['Function', 'n', 'p50', 'p99', 'max'],
        rows: groups.map(({ label, metrics: ms }, i) => [label, formatCount(series[i].count), formatMs(series[i].p50),
          formatMs(series[i].p99), formatMs(ms.reduce((m, x) => (finite(x.max) && x.max > m ? x.max : m), -Infinity))]),
      };
    } else if (spec.perFunctionTable) {
      const columns = spec.series.map(({ label, select }) => ({ label, metrics: pick(metrics, select) }));
      const names = [...new Set(columns.flatMap((c) => c.metrics.map(functionOf)))].sort();
      if (names.length) {
        model.table = {
          head: ['Function', ...columns.map((c) => c.label)],
          rows: names.map((fn) => [fn || '(none)',
            ...columns.map((c) => formatCount(total(c.metrics.filter((m) => functionOf(m) === fn))))]),
        };
      }
    }
    return model;
  }

  /** A series' legend text: its total, or for durations its percentiles. */
  function legendText(series, how) {
    return how === 'max'
      ? `p50 ${formatMs(series.p50)} · p99 ${formatMs(series.p99)} · n ${formatCount(series.count)}`
      : formatCount(series.total);
  }

  const logic = {
    BUCKETS, COLORS, POLL_MS, WIDGETS, bucketTimes, byFunction, countOf, customNamespaces, droppedChunks, formatClock,
    formatCount, formatMs, isCustom, legendText, linePath, markerPath, matches, niceMax, percentile, perBucket, pick, timeTicks, total,
    widgetModel,
  };
  if (typeof module === 'object' && module.exports) {
    module.exports = logic;
    return;
  }

  // ---- The page ----

  const SVG = 'http://www.w3.org/2000/svg';

  function el(name, attributes = {}, text) {
    const node = document.createElement(name);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(name, attributes = {}, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function chart(model) {
    const { left, top, width, height } = BOX;
    const bottom = top + height;
    const root = svg('svg', { class: 'chart', viewBox: `0 0 ${VIEW.width} ${VIEW.height}`, 'data-chart': model.key,
      role: 'img', 'aria-label': `${model.title}, ${model.how} per ${model.times.length > 1 ? (model.times[1] - model.times[0]) / 1000 : 10} s` });
    const yLabel = model.how === 'max' ? formatMs(model.yMax) : formatCount(model.yMax);
    root.append(
      svg('line', { x1: left, y1: top, x2: left + width, y2: top, stroke: '#eaeef2' }),
      svg('line', { x1: left, y1: bottom, x2: left + width, y2: bottom, stroke: '#8c959f' }),
      svg('line', { x1: left, y1: top, x2: left, y2: bottom, stroke: '#8c959f' }),
      svg('text', { x: left - 4, y: top + 8, 'text-anchor': 'end', 'data-y-max': model.yMax }, yLabel),
      svg('text', { x: left - 4, y: bottom, 'text-anchor': 'end' }, '0'),
    );
    const n = model.times.length;
    for (const i of timeTicks(model.times)) {
      const x = round(left + (n === 1 ? width / 2 : (i * width) / (n - 1)));
      root.append(svg('line', { x1: x, y1: bottom, x2: x, y2: bottom + 4, stroke: '#8c959f' }),
        svg('text', { x, y: bottom + 16, 'text-anchor': x + 16 > VIEW.width ? 'end' : 'middle' }, formatClock(model.times[i])));
    }
    model.series.forEach((s, i) => {
      const path = svg('path', { class: 'series', d: linePath(s.values, BOX, model.yMax), fill: 'none',
        stroke: COLORS[i % COLORS.length], 'stroke-width': 2, 'stroke-linejoin': 'round', 'stroke-linecap': 'round',
        'data-series': s.label, 'data-total': s.total, 'data-points': s.buckets });
      path.append(svg('title', {}, `${s.label}: ${legendText(s, model.how)}`));
      root.append(path);
      // Durations leave gaps between buckets: each bucket's value gets a dot of its own.
      if (model.how === 'max') {
        root.append(svg('path', { class: 'markers', d: markerPath(s.values, BOX, model.yMax), fill: 'none',
          stroke: COLORS[i % COLORS.length], 'stroke-width': 6, 'stroke-linecap': 'round' }));
      }
    });
    return root;
  }

  function legend(model) {
    const list = el('ul', { class: 'legend' });
    model.series.forEach((s, i) => {
      const item = el('li', { 'data-series': s.label, 'data-total': String(s.total) });
      const swatch = svg('svg', { width: 10, height: 10, 'aria-hidden': 'true' });
      swatch.append(svg('rect', { width: 10, height: 10, fill: COLORS[i % COLORS.length] }));
      item.append(swatch, ` ${s.label} `, el('b', {}, legendText(s, model.how)));
      list.append(item);
    });
    return list;
  }

  function table(model) {
    const node = el('table');
    const head = el('tr');
    for (const h of model.table.head) head.append(el('th', { scope: 'col' }, h));
    node.append(el('thead'), el('tbody'));
    node.tHead.append(head);
    for (const row of model.table.rows) {
      const tr = el('tr');
      row.forEach((cell, i) => tr.append(el(i ? 'td' : 'th', i ? {} : { scope: 'row' }, cell)));
      node.tBodies[0].append(tr);
    }
    return node;
  }

  function render(section, model) {
    section.dataset.state = model.empty ? 'empty' : 'data';
    const parts = [el('h2', {}, model.title)];
    if (model.empty) {
      parts.push(el('p', { class: 'empty' }, 'no data yet'));
    } else {
      parts.push(el('p', { class: 'caption' }, model.how === 'max' ? 'max per 10 s, last 10 minutes' : 'sum per 10 s, last 10 minutes'),
        chart(model), legend(model));
      if (model.table) parts.push(table(model));
    }
    if (model.dropped !== undefined) {
      const note = el('p', { class: 'note', 'data-dropped': model.dropped === null ? '' : String(model.dropped) },
        `Dropped chunks: ${model.dropped === null ? '–' : model.dropped}`);
      parts.push(note);
    }
    section.replaceChildren(...parts);
  }

  const sections = new Map();
  const status = document.getElementById('status');
  const container = document.getElementById('widgets');
  for (const spec of WIDGETS) {
    const section = el('section', { class: 'widget', 'data-widget': spec.key, 'data-state': 'empty', 'aria-label': spec.title });
    section.append(el('h2', {}, spec.title), el('p', { class: 'empty' }, 'no data yet'));
    sections.set(spec.key, section);
    container.append(section);
  }

  let updates = 0;

  function show(data) {
    for (const spec of WIDGETS) render(sections.get(spec.key), widgetModel(spec, data));
    const namespaces = customNamespaces(data);
    document.getElementById('namespace').textContent = namespaces.length ? `Custom namespace: ${namespaces.join(', ')}` : '';
    updates += 1;
    document.body.dataset.updates = String(updates);
    status.dataset.state = 'live';
    status.textContent = `Live: updated ${formatClock(finite(data?.now) ? data.now : Date.now(), true)}, every ${POLL_MS / 1000} s`;
  }

  async function poll() {
    try {
      const response = await fetch(JSON_URL, { cache: 'no-store' });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      show(await response.json());
    } catch (error) {
      status.dataset.state = 'error';
      status.textContent = `Could not read ${JSON_URL} (${error.message}); trying again every ${POLL_MS / 1000} s`;
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  poll();
})();
