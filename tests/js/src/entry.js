// The browser bundle's entry: each client as a global the test page calls.
import { runApollo } from "./apollo.js";
import { runUrql } from "./urql.js";

window.chatrClients = { apollo: runApollo, urql: runUrql };
