// Starts Swagger UI on /docs; its settings come from the page's data-config attribute (no inline script).
"use strict";

(function start() {
  const root = document.getElementById("swagger-ui");
  const config = JSON.parse(root.dataset.config || "{}");
  window.ui = window.SwaggerUIBundle({
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    validatorUrl: null, // no badge from the online validator: nothing leaves this server
    ...config,
  });
})();
