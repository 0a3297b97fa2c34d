// The Node.js peer of the cold-start benchmark: the official sample's $connect handler
// (a DocumentClient put of the connection id), with the SDK clients it loads, behind the
// smallest Lambda Runtime API loop (Node's built-in fetch, no runtime library).
import { run } from './runtime.mjs';
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

await run(handler);
