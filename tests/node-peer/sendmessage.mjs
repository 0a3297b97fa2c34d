// The benchmark's Node.js peer of onMessage: the official sample's sendmessage algorithm
// (Scan every connection id, Promise.all of PostToConnectionCommand, delete the connection
// on 410 Gone), ported to AWS SDK v3, behind the same smallest Lambda Runtime API loop as
// index.mjs (runtime.mjs), so CPU per delivery can be compared with the Rust function's in the same run.
import { run } from './runtime.mjs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand, DeleteCommand } from '@aws-sdk/lib-dynamodb';
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';

const TableName = process.env.TABLE_NAME;
const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({}));

// One management client per endpoint: the override when set, else the API's own stage URL.
const managements = new Map();
function management(context) {
  const endpoint = process.env.AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI
    || `https://${context.domainName}/${context.stage}`;
  let client = managements.get(endpoint);
  if (!client) {
    client = new ApiGatewayManagementApiClient({ endpoint });
    managements.set(endpoint, client);
  }
  return client;
}

async function connectionIds() {
  const ids = [];
  let ExclusiveStartKey;
  do {
    const page = await ddb.send(new ScanCommand({ TableName, ProjectionExpression: 'connectionid', ExclusiveStartKey }));
    for (const item of page.Items ?? []) ids.push(item.connectionid);
    ExclusiveStartKey = page.LastEvaluatedKey;
  } while (ExclusiveStartKey);
  return ids;
}

async function handler(event) {
  const context = event.requestContext ?? {};
  let ids;
  try {
    ids = await connectionIds();
  } catch (e) {
    return { statusCode: 500, body: e.message };
  }

  const api = management(context);
  const { message } = JSON.parse(event.body);
  const postData = JSON.stringify({ type: 'message', from: context.connectionId, message });

  try {
    await Promise.all(ids.map(async (id) => {
      try {
        await api.send(new PostToConnectionCommand({ ConnectionId: id, Data: postData }));
      } catch (e) {
        if (e.$metadata?.httpStatusCode === 410 || e.name === 'GoneException') {
          await ddb.send(new DeleteCommand({ TableName, Key: { connectionid: id } }));
        } else {
          throw e;
        }
      }
    }));
  } catch (e) {
    return { statusCode: 500, body: e.message };
  }

  return { statusCode: 200, body: 'Data sent.' };
}

await run(handler);
