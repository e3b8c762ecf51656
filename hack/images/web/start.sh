#!/bin/sh
set -e
mkdir -p /tmp/www
cat > /tmp/www/index.html <<HTML
<html><body><h1>web-101</h1><p id="greeting">$GREETING</p><p id="flag">$FLAG</p></body></html>
HTML
exec httpd -f -p "$PORT" -h /tmp/www
