/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

const STYLE = `body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1d2330; background: #f6f7f9; }
header { display: flex; align-items: baseline; gap: 1.5rem; flex-wrap: wrap; margin-bottom: 1rem; }
h1 { font-size: 1.4rem; margin: 0; } h2 { font-size: 1.1rem; margin-top: 2rem; }
nav a + a { margin-left: 1rem; }
table { border-collapse: collapse; background: #fff; width: 100%; box-shadow: 0 1px 2px #0002; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
th { font-size: .8rem; text-transform: uppercase; color: #5b6473; white-space: nowrap; }
th.num { text-align: right; }
td.nowrap { white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #8a92a0; } .small { font-size: .75rem; }
.error { color: #a61b1b; font-size: .85rem; max-width: 28rem; }
.phase { display: inline-block; padding: .05rem .45rem; border-radius: .6rem; font-size: .8rem; background: #e3e6ea; }
.phase-running { background: #d3f2dc; color: #145c2c; } .phase-starting, .phase-scheduled, .phase-pending { background: #fff1c7; color: #6b5000; }
.phase-failed { background: #fbd5d5; color: #8a1414; } .phase-expired, .phase-stopping, .phase-stopped, .phase-terminating { background: #e3e6ea; color: #3d4452; }
form { margin: 1rem 0; } .viewer { margin-left: auto; font-size: .85rem; color: #5b6473; }`;

/** What every dashboard page has around its content. */
export interface PageFrame {
  /** The `<title>` after `ctfleet: `, and the heading after `ctfleet `. */
  title: string;
  /** Links to the other pages, as [text, href] (escaped here). */
  nav: readonly (readonly [string, string])[];
  /** HTML (already escaped) beside the heading: what the page counts. */
  summary: string;
  viewer: { name: string; readOnly: boolean };
  refreshSeconds: number;
  /** HTML (already escaped) of the page's content. */
  body: string;
}

/**
 * A whole dashboard page: plain HTML that refreshes itself, one inline style
 * sheet and no script (the routes send a Content-Security-Policy that allows
 * nothing else).
 */
export function renderPage(frame: PageFrame): string {
  const { viewer } = frame;
  const nav = frame.nav.map(([text, href]) => `<a href="${escapeHtml(href)}">${escapeHtml(text)}</a>`).join(' ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="${frame.refreshSeconds}">
<title>ctfleet: ${escapeHtml(frame.title)}</title>
<style>
${STYLE}
</style>
</head>
<body>
<header>
<h1>ctfleet ${escapeHtml(frame.title)}</h1>
<nav>${nav}</nav>
<span id="summary">${frame.summary}</span>
<span class="viewer">signed in as ${escapeHtml(viewer.name)}${viewer.readOnly ? ' · <strong id="read-only">read-only</strong>' : ''} · refreshes every ${frame.refreshSeconds} s</span>
</header>
${frame.body}
</body>
</html>
`;
}
