// Probot's webhook engine as Probot runs it: @octokit/webhooks' Node middleware verifies the
// HMAC, parses the JSON and dispatches to handlers; no queue. Used as a baseline by
// bench/ingest.py. Usage: node octokit_server.mjs PORT (secret in WEBHOOK_SECRET).
import http from "node:http";
import { Webhooks, createNodeMiddleware } from "@octokit/webhooks";

const port = Number(process.argv[2]);
const webhooks = new Webhooks({ secret: process.env.WEBHOOK_SECRET });
let handled = 0;
webhooks.onAny(() => {
  handled += 1; // an app's handler would run here
});
const middleware = createNodeMiddleware(webhooks, { path: "/api/github/hook" });
const server = http.createServer(async (req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200).end(String(handled));
    return;
  }
  await middleware(req, res, () => res.writeHead(404).end());
});
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
