#!/bin/sh
set -e
sleep "$DELAY"
mkdir -p /tmp/www
echo "<html><body><p id=\"greeting\">$GREETING</p></body></html>" > /tmp/www/index.html
exec httpd -f -p "$PORT" -h /tmp/www
