"""chatr: a real-time chat server with one GraphQL API."""
