import { PHASES, type ChallengeView } from '../domain/challenge-view.ts';
import { shortDuration } from '../domain/durations.ts';
import { escapeHtml, renderPage } from './html.ts';

export interface ChallengePageModel {
  challenges: ChallengeView[];
  /** Who is looking (the page changes nothing, so read tokens see all of it). */
  viewer: { name: string; readOnly: boolean };
  /** Where the dashboard is served (`/dashboard`). */
  basePath: string;
  now: number;
  refreshSeconds: number;
}

function instancesLink(view: ChallengeView, basePath: string): string {
  return `${basePath}/?namespace=${encodeURIComponent(view.namespace)}&challenge=${encodeURIComponent(view.name)}`;
}

function countCell(phase: string, count: number): string {
  if (count === 0) return `<td class="num muted" data-phase="${phase}">0</td>`;
  return `<td class="num" data-phase="${phase}"><span class="phase phase-${phase.toLowerCase()}">${count}</span></td>`;
}

function challengeRow(view: ChallengeView, basePath: string, now: number): string {
  const notes = [view.namespace, ...(view.generation === null ? [] : [`generation ${view.generation}`]), ...(view.deleting ? ['deleting'] : [])];
  const image = view.declared
    ? escapeHtml(view.image ?? '')
    : `<span class="muted" title="${escapeHtml(`No Challenge ${view.name} in namespace ${view.namespace}`)}">no Challenge</span>`;
  const flag = view.flag === null ? '<span class="muted">none</span>' : `${escapeHtml(view.flag.kind)} · ${escapeHtml(view.flag.delivery)}`;
  const age = view.createdAt === null ? '' : `<time datetime="${escapeHtml(view.createdAt)}" title="${escapeHtml(view.createdAt)}">${shortDuration(now - Date.parse(view.createdAt))}</time>`;
  return `<tr data-namespace="${escapeHtml(view.namespace)}" data-challenge="${escapeHtml(view.name)}" data-declared="${String(view.declared)}">
<td><a href="${escapeHtml(instancesLink(view, basePath))}">${escapeHtml(view.name)}</a><div class="muted small">${escapeHtml(notes.join(' · '))}</div></td>
<td>${image}</td>
<td class="nowrap">${flag}</td>
${view.pool === null ? '<td class="muted" data-pool="none">none</td>' : `<td class="num" data-pool="${view.pool.idle}/${view.pool.size}" title="idle containers ready to be claimed / spec.pool.size">${view.pool.idle} / ${view.pool.size}</td>`}
<td>${age}</td>
<td class="num" data-count="total">${view.instances.total}</td>
${PHASES.map((phase) => countCell(phase, view.instances.phases[phase])).join('')}
</tr>`;
}

/**
 * The challenges view of the dashboard: one row per Challenge of the watched
 * namespaces (and per challenge name instances use without one), with its image,
 * flag kind and delivery, warm pool (idle / size), age, and its instances counted per phase; each row links
 * to its instances on the instance page. Every value is escaped (organisers and
 * platforms choose them), and nothing of a Challenge's env, command, args, flag
 * format or flag Secret is shown.
 */
export function renderChallengePage(model: ChallengePageModel): string {
  const { challenges, basePath, now } = model;
  const declared = challenges.filter((view) => view.declared).length;
  const instances = challenges.reduce((sum, view) => sum + view.instances.total, 0);
  const running = challenges.reduce((sum, view) => sum + view.instances.running, 0);
  const head = `<tr><th>challenge</th><th>image</th><th>flag</th><th class="num" title="warm pool: idle / size">pool</th><th>age</th><th class="num">instances</th>${PHASES.map((phase) => `<th class="num">${phase}</th>`).join('')}</tr>`;
  const table = challenges.length === 0
    ? '<p class="muted" id="no-challenges">No Challenges, and no instances, in the watched namespaces.</p>'
    : `<table id="challenges"><thead>${head}</thead><tbody>\n${challenges.map((view) => challengeRow(view, basePath, now)).join('\n')}\n</tbody></table>`;
  const note = declared === challenges.length
    ? ''
    : '\n<p class="muted small" id="undeclared">“no Challenge”: instances use this name, but their namespace has no Challenge of it: direct instances (<code>spec.challenge</code>), or instances of a missing Challenge, which fail <code>ChallengeNotFound</code>.</p>';
  return renderPage({
    title: 'challenges',
    nav: [['Instances', `${basePath}/`], ['Queue dashboard', `${basePath}/queues/`]],
    summary: `${declared} challenge${declared === 1 ? '' : 's'} · ${instances} instance${instances === 1 ? '' : 's'}, ${running} running`,
    viewer: model.viewer,
    refreshSeconds: model.refreshSeconds,
    body: `${table}${note}`,
  });
}
