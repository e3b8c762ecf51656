import { shortDuration } from '../domain/durations.ts';
import { lastErrorOf, type InstanceView } from '../domain/instance-view.ts';

export interface QueueCounts {
  queue: string;
  counts: Record<string, number>;
}

export interface InstancePageModel {
  instances: InstanceView[];
  /** Job counts per queue, or why they could not be read. */
  queues: QueueCounts[] | { error: string };
  /** Who is looking, and whether they may change anything. */
  viewer: { name: string; readOnly: boolean };
  filter: { team?: string; challenge?: string };
  /** Where the dashboard is served (`/dashboard`). */
  basePath: string;
  now: number;
  refreshSeconds: number;
}

const PHASE_ORDER = ['Running', 'Starting', 'Scheduled', 'Pending', 'Stopping', 'Stopped', 'Failed', 'Expired', 'Terminating'] as const;
const QUEUE_STATES = ['active', 'waiting', 'prioritized', 'delayed', 'failed', 'completed'] as const;

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function phaseOf(view: InstanceView): string {
  return view.deleting ? 'Terminating' : view.phase;
}

function endpointCell(view: InstanceView): string {
  if (view.endpoints.length === 0) return '<span class="muted">–</span>';
  return view.endpoints
    .map((endpoint) => {
      const text = escapeHtml(`${endpoint.host}:${endpoint.port}${endpoint.protocol === 'UDP' ? '/udp' : ''}`);
      return endpoint.url.startsWith('http://') || endpoint.url.startsWith('https://') ? `<a href="${escapeHtml(endpoint.url)}">${text}</a>` : text;
    })
    .join('<br>');
}

function expiryCell(view: InstanceView, now: number): string {
  // Every instance ends (at ttlSeconds, or at the deployment's maximum lifetime); before it runs, when is not known yet.
  if (view.expiresAt === null) return '<span class="muted">once running</span>';
  const left = Date.parse(view.expiresAt) - now;
  const label = left <= 0 ? `${shortDuration(-left)} ago` : `in ${shortDuration(left)}`;
  return `<time datetime="${escapeHtml(view.expiresAt)}" title="${escapeHtml(view.expiresAt)}">${label}</time>`;
}

/** Natural order: team-7 before team-12. */
const byText = (a: string, b: string): number => a.localeCompare(b, 'en', { numeric: true });

function instanceRows(instances: InstanceView[], now: number): string {
  const sorted = [...instances].sort((a, b) => byText(a.team, b.team) || byText(a.challenge, b.challenge) || byText(a.name, b.name));
  return sorted
    .map((view) => {
      const phase = phaseOf(view);
      const error = lastErrorOf(view);
      return `<tr data-team="${escapeHtml(view.team)}" data-challenge="${escapeHtml(view.challenge)}" data-phase="${escapeHtml(phase)}">
<td class="nowrap">${escapeHtml(view.team)}</td>
<td>${escapeHtml(view.challenge)}<div class="muted small">${escapeHtml(`${view.namespace}/${view.name}`)}</div></td>
<td><span class="phase phase-${escapeHtml(phase.toLowerCase())}">${escapeHtml(phase)}</span></td>
<td>${endpointCell(view)}</td>
<td class="nowrap">${view.node === null ? '<span class="muted">–</span>' : escapeHtml(view.node)}</td>
<td>${view.createdAt === null ? '' : `<time datetime="${escapeHtml(view.createdAt)}" title="${escapeHtml(view.createdAt)}">${shortDuration(now - Date.parse(view.createdAt))}</time>`}</td>
<td>${expiryCell(view, now)}</td>
<td class="error">${error === undefined ? '' : escapeHtml(error)}</td>
</tr>`;
    })
    .join('\n');
}

function phaseSummary(instances: InstanceView[]): string {
  const counts = new Map<string, number>();
  for (const view of instances) counts.set(phaseOf(view), (counts.get(phaseOf(view)) ?? 0) + 1);
  const parts = PHASE_ORDER.filter((phase) => counts.has(phase)).map((phase) => `<span class="phase phase-${phase.toLowerCase()}">${phase} ${counts.get(phase) ?? 0}</span>`);
  return parts.length === 0 ? '' : parts.join(' ');
}

function queueTable(queues: InstancePageModel['queues'], basePath: string): string {
  if (!Array.isArray(queues)) return `<p class="error">Queues could not be read: ${escapeHtml(queues.error)}</p>`;
  if (queues.length === 0) return '<p class="muted">No queues yet: no job was ever queued under this prefix.</p>';
  const head = QUEUE_STATES.map((state) => `<th>${state}</th>`).join('');
  const rows = queues
    .map(({ queue, counts }) => `<tr data-queue="${escapeHtml(queue)}"><td><a href="${escapeHtml(`${basePath}/queues/queue/${encodeURIComponent(queue)}`)}">${escapeHtml(queue)}</a></td>${QUEUE_STATES.map((state) => `<td class="num">${counts[state] ?? 0}</td>`).join('')}</tr>`)
    .join('\n');
  return `<table id="queues"><thead><tr><th>queue</th>${head}</tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

function filterForm(filter: InstancePageModel['filter'], basePath: string): string {
  const field = (name: 'team' | 'challenge'): string => `<label>${name} <input name="${name}" value="${escapeHtml(filter[name] ?? '')}" size="14"></label>`;
  return `<form method="get" action="${escapeHtml(`${basePath}/`)}">${field('team')} ${field('challenge')} <button type="submit">Filter</button> <a href="${escapeHtml(`${basePath}/`)}">all</a></form>`;
}

/**
 * The instance view of the dashboard: one row per instance, sorted by team and
 * challenge, with phase, endpoint, node, age, expiry and the last error, above
 * the job counts of every queue. Plain HTML that refreshes itself; every value is
 * escaped, and nothing of an instance's env, args or command is ever shown.
 */
export function renderInstancePage(model: InstancePageModel): string {
  const { instances, viewer, basePath, now } = model;
  const shown = instances.filter((view) => (model.filter.team === undefined || view.team === model.filter.team) && (model.filter.challenge === undefined || view.challenge === model.filter.challenge));
  const table = shown.length === 0
    ? '<p class="muted" id="no-instances">No ChallengeInstances match.</p>'
    : `<table id="instances"><thead><tr><th>team</th><th>challenge</th><th>phase</th><th>endpoint</th><th>node</th><th>age</th><th>expires</th><th>last error</th></tr></thead><tbody>\n${instanceRows(shown, now)}\n</tbody></table>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="${model.refreshSeconds}">
<title>ctfleet: instances</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1d2330; background: #f6f7f9; }
header { display: flex; align-items: baseline; gap: 1.5rem; flex-wrap: wrap; }
h1 { font-size: 1.4rem; margin: 0; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; background: #fff; width: 100%; box-shadow: 0 1px 2px #0002; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
th { font-size: .8rem; text-transform: uppercase; color: #5b6473; white-space: nowrap; }
td.nowrap { white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #8a92a0; } .small { font-size: .75rem; }
.error { color: #a61b1b; font-size: .85rem; max-width: 28rem; }
.phase { display: inline-block; padding: .05rem .45rem; border-radius: .6rem; font-size: .8rem; background: #e3e6ea; }
.phase-running { background: #d3f2dc; color: #145c2c; } .phase-starting, .phase-scheduled, .phase-pending { background: #fff1c7; color: #6b5000; }
.phase-failed { background: #fbd5d5; color: #8a1414; } .phase-expired, .phase-stopping, .phase-stopped, .phase-terminating { background: #e3e6ea; color: #3d4452; }
form { margin: 1rem 0; } .viewer { margin-left: auto; font-size: .85rem; color: #5b6473; }
</style>
</head>
<body>
<header>
<h1>ctfleet instances</h1>
<nav><a href="${escapeHtml(`${basePath}/queues/`)}">Queue dashboard</a></nav>
<span id="summary">${shown.length} of ${instances.length} instance${instances.length === 1 ? '' : 's'} ${phaseSummary(shown)}</span>
<span class="viewer">signed in as ${escapeHtml(viewer.name)}${viewer.readOnly ? ' · <strong id="read-only">read-only</strong>' : ''} · refreshes every ${model.refreshSeconds} s</span>
</header>
${filterForm(model.filter, basePath)}
${table}
<h2>Queues</h2>
${queueTable(model.queues, basePath)}
</body>
</html>
`;
}
