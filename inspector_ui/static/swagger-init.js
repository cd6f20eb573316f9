// Starts Swagger UI on /docs. A file, not an inline script, so the page's CSP needs no 'unsafe-inline'.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  // /docs?url=/api/services/NAME/openapi.json shows a service's inferred API (the service page
  // links here); only those paths of this inspector, never another origin's document.
  var wanted = new URLSearchParams(location.search).get("url");
  var inferred = /^\/api\/services\/[^?#]+\/openapi\.json(\?[^#]*)?$/;
  window.ui = SwaggerUIBundle({
    url: wanted && inferred.test(wanted) ? wanted : root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
  });
})();
