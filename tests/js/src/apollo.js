// Apollo Client 4: HttpLink behind a PersistedQueryLink (hashed queries over GET),
// BatchHttpLink, and GraphQLWsLink for subscriptions, against chatr on another origin.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { BatchHttpLink } from "@apollo/client/link/batch-http";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";

import { AVAILABLE, ME, MY_EVENTS, SEND } from "./documents.js";
import { firstMatching, recordingFetch, sendUntilDelivered, sha256 } from "./recorder.js";

export async function runApollo({ httpUrl, wsUrl, token, recipientId, tag }) {
  const requests = [];
  const fetch = recordingFetch(requests);
  const headers = { authorization: `Bearer ${token}` };
  const ws = createClient({ url: wsUrl, connectionParams: { authorization: `Bearer ${token}` } });
  const isSubscription = ({ query }) => {
    const definition = getMainDefinition(query);
    return definition.kind === "OperationDefinition" && definition.operation === "subscription";
  };
  const http = new PersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(
    new HttpLink({ uri: httpUrl, headers, fetch })
  );
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: ApolloLink.split(isSubscription, new GraphQLWsLink(ws), http),
  });
  const batched = new ApolloClient({
    cache: new InMemoryCache(),
    link: new BatchHttpLink({ uri: httpUrl, headers, fetch, batchMax: 10, batchInterval: 20 }),
  });
  try {
    const query = await client.query({ query: gql(ME), fetchPolicy: "network-only" });
    const [batchA, batchB] = await Promise.all([
      batched.query({ query: gql(ME), fetchPolicy: "network-only" }),
      batched.query({ query: gql(AVAILABLE), variables: { u: `free_${tag}` }, fetchPolicy: "network-only" }),
    ]);
    const body = `apollo says hi ${tag}`;
    const event = firstMatching(
      (next, fail) => {
        const subscription = client.subscribe({ query: gql(MY_EVENTS) }).subscribe({
          next: (result) => next(result),
          error: fail,
        });
        return () => subscription.unsubscribe();
      },
      (result) => result.data?.myEvents?.message?.body === body
    );
    const { mutation, received } = await sendUntilDelivered(event, (attempt) =>
      client.mutate({
        mutation: gql(SEND),
        variables: { input: { recipientId, body, clientMessageId: `apollo-${tag}-${attempt}` } },
      })
    );
    return {
      query: query.data.me,
      batch: [batchA.data.me, batchB.data.usernameAvailable],
      mutation: mutation.data.sendMessage,
      subscription: received.data.myEvents,
      requests,
    };
  } finally {
    await ws.dispose();
  }
}
