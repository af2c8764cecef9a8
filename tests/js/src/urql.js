// urql 6 with its default configuration (queries over GET within the URL limit, the
// default exchanges) plus the subscription exchange over graphql-ws.
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from "@urql/core";
import { createClient } from "graphql-ws";

import { ME, MY_EVENTS, SEND } from "./documents.js";
import { firstMatching, recordingFetch, sendUntilDelivered } from "./recorder.js";

export async function runUrql({ httpUrl, wsUrl, token, recipientId, tag }) {
  const requests = [];
  const ws = createClient({ url: wsUrl, connectionParams: { authorization: `Bearer ${token}` } });
  const client = new Client({
    url: httpUrl,
    fetch: recordingFetch(requests),
    fetchOptions: () => ({ headers: { authorization: `Bearer ${token}` } }),
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || "" };
          return {
            subscribe(sink) {
              return { unsubscribe: ws.subscribe(input, sink) };
            },
          };
        },
      }),
    ],
  });
  try {
    const query = await client.query(ME, {}).toPromise();
    if (query.error) throw query.error;
    const body = `urql says hi ${tag}`;
    const event = firstMatching(
      (next, fail) => {
        const subscription = client.subscription(MY_EVENTS, {}).subscribe((result) => {
          if (result.error) fail(result.error);
          else next(result);
        });
        return () => subscription.unsubscribe();
      },
      (result) => result.data?.myEvents?.message?.body === body
    );
    const { mutation, received } = await sendUntilDelivered(event, async (attempt) => {
      const input = { recipientId, body, clientMessageId: `urql-${tag}-${attempt}` };
      const sent = await client.mutation(SEND, { input }).toPromise();
      if (sent.error) throw sent.error;
      return sent;
    });
    return {
      query: query.data.me,
      mutation: mutation.data.sendMessage,
      subscription: received.data.myEvents,
      requests,
    };
  } finally {
    await ws.dispose();
  }
}
