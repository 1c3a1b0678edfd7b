"""A webhook receiver on loopback that refuses the first two deliveries (500) and accepts
the third, verifying every delivery's signature with the `standardwebhooks` package (an
implementation of the Standard Webhooks scheme Baton did not write).

Prints {"port": N}, reads the signing secret from standard input, then prints one JSON line
per delivery: the status it answered, whether the signature verified, and the payload.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

REFUSE = 2


class Handler(BaseHTTPRequestHandler):
    seen = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = WEBHOOK.verify(body, headers)
            verified = True
        except WebhookVerificationError:
            payload, verified = None, False
        Handler.seen += 1
        status = 500 if Handler.seen <= REFUSE else 204
        self.send_response(status)
        self.end_headers()
        print(
            json.dumps(
                {
                    "status": status,
                    "verified": verified,
                    "id": headers.get("webhook-id"),
                    "payload": payload,
                }
            ),
            flush=True,
        )

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(json.dumps({"port": server.server_address[1]}), flush=True)
WEBHOOK = Webhook(sys.stdin.readline().strip())
server.serve_forever()
