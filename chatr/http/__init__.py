"""GraphQL over HTTP at /graphql, per the GraphQL-over-HTTP spec (the WebSocket side stays
with strawberry's view in chatr.app).

One module per job: `media` (content negotiation and the response bodies), `params` (what a
request asks for: GET parameters, a JSON body, a batch), `persisted` (automatic persisted
queries and trusted documents), `cors` (cross-origin rules from `CHATR_ALLOWED_ORIGINS`),
`endpoint` (runs the operations), `graphiql` (the offline IDE page and its assets).
"""

from __future__ import annotations

from chatr.http.endpoint import GraphQLHTTP

__all__ = ["GraphQLHTTP"]
