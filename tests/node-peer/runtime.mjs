// The smallest Lambda Runtime API loop (Node's built-in fetch, no runtime library), shared
// by the benchmark's Node.js peers: next → handler → response, or error.
export async function run(handler) {
  const api = `http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation`;
  for (;;) {
    const next = await fetch(`${api}/next`);
    const id = next.headers.get('lambda-runtime-aws-request-id');
    const event = await next.json();
    try {
      const result = await handler(event);
      await fetch(`${api}/${id}/response`, { method: 'POST', body: JSON.stringify(result) });
    } catch (error) {
      await fetch(`${api}/${id}/error`, {
        method: 'POST',
        body: JSON.stringify({ errorType: error.name, errorMessage: error.message }),
      });
    }
  }
}
