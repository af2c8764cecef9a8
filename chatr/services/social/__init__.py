"""The social graph: friends (requests, answers, removal), blocks, and finding people.

One row per pair of people in `friendships` (REQUESTED by its requester, or ACCEPTED), and
one row per blocker in `blocks` (two people may block each other; each lifts only their own).
Every change takes both users' rows locked (`pairs.between`), so two people asking each other
at once, or a request racing a block, run one after the other and the one-row rule holds.

Duplicates are refused, not ignored: asking twice, asking a friend, or blocking twice is
CONFLICT; answering or removing something that is not there is NOT_FOUND. A client whose
response got lost can treat CONFLICT as "already done" and re-query the lists.

`friends` and `blocks` change the graph, `events` announces each change live, `search` finds
people; `pairs` is the one transaction shape they all change it in.
"""
