// The Node.js peer of the cold-start benchmark: the official sample's $connect handler
// (a DocumentClient put of the connection id), with the SDK clients it loads, behind the
// smallest Lambda Runtime API loop (Node's built-in fetch, no runtime library).
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';

const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({}));
const management = new ApiGatewayManagementApiClient({ endpoint: process.env.AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI });
void management;

async function handler(event) {
  const context = event.requestContext ?? {};
  if (context.eventType === 'CONNECT') {
    await ddb.send(new PutCommand({
      TableName: process.env.TABLE_NAME,
      Item: { connectionid: context.connectionId, connectedAt: context.connectedAt },
    }));
  }
  return { statusCode: 200 };
}

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
