// chatr's GraphiQL glue: queries and mutations over HTTP POST, subscriptions over
// graphql-ws (graphql-transport-ws) with the Headers tab sent as connectionParams, so
// {"Authorization": "Bearer <token>"} in the Headers tab signs in both.
(function () {
  "use strict";
  var httpUrl = new URL("/graphql", window.location.href).toString();
  var wsUrl = httpUrl.replace(/^http/, "ws");
  var sockets = {};

  function socketFor(headers) {
    var params = {};
    Object.keys(headers || {}).forEach(function (name) {
      params[name.toLowerCase()] = headers[name];
    });
    var key = JSON.stringify(params);
    if (!sockets[key]) {
      sockets[key] = graphqlWs.createClient({ url: wsUrl, connectionParams: params, lazy: true });
    }
    return sockets[key];
  }

  // The operation types defined at the top level of a document, by name ("" when unnamed):
  // enough to tell a subscription from the rest without a parser.
  function operationTypes(source) {
    var types = {};
    var depth = 0;
    var i = 0;
    while (i < source.length) {
      var c = source[i];
      if (c === "#") {
        while (i < source.length && source[i] !== "\n") i++;
      } else if (c === '"') {
        var block = source.substr(i, 3) === '"""';
        i += block ? 3 : 1;
        while (i < source.length && !(block ? source.substr(i, 3) === '"""' : source[i] === '"')) {
          i += source[i] === "\\" ? 2 : 1;
        }
        i += block ? 3 : 1;
        continue;
      } else if (c === "{" || c === "(") {
        if (depth === 0 && c === "{" && !("" in types)) types[""] = "query";
        depth++;
      } else if (c === "}" || c === ")") {
        depth--;
      } else if (depth === 0 && /[A-Za-z_]/.test(c)) {
        var match = /^(query|mutation|subscription|fragment)\b\s*([A-Za-z_][A-Za-z0-9_]*)?/.exec(
          source.slice(i)
        );
        if (match) {
          if (match[1] !== "fragment") types[match[2] || ""] = match[1];
          i += match[0].length;
          continue;
        }
      }
      i++;
    }
    return types;
  }

  function isSubscription(params) {
    var types = operationTypes(params.query || "");
    var names = Object.keys(types);
    var name = params.operationName || (names.length === 1 ? names[0] : "");
    return types[name] === "subscription";
  }

  function fetcher(params, options) {
    var headers = (options && options.headers) || {};
    if (isSubscription(params)) {
      return socketFor(headers).iterate({
        query: params.query,
        variables: params.variables,
        operationName: params.operationName,
      });
    }
    return fetch(httpUrl, {
      method: "POST",
      headers: Object.assign(
        {
          "Content-Type": "application/json",
          Accept: "application/graphql-response+json, application/json;q=0.9",
        },
        headers
      ),
      body: JSON.stringify(params),
    }).then(function (response) {
      return response.json();
    });
  }

  var explorer = GraphiQLPluginExplorer.explorerPlugin();
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      plugins: [explorer],
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      inputValueDeprecation: true,
    })
  );
})();
