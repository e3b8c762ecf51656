// Prints what the demo's instances answer: one row per ChallengeInstance in the
// namespace, with the endpoint the status reports and what that endpoint said.
//   node hack/demo-report.ts <namespace>
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { formatTable } from '../src/cli/output.ts';

interface Item {
  metadata: { name: string };
  spec: { team: string; challenge?: string; challengeRef?: { name: string } };
  status?: { phase?: string; node?: string; endpoints?: { url?: string; host: string; port: number }[] };
}

async function probe(url: string): Promise<string> {
  if (url.startsWith('http')) {
    const response = await fetch(url, { signal: AbortSignal.timeout(3_000) });
    const body = await response.text();
    return `HTTP ${response.status}: ${/<p id="greeting">([^<]*)<\/p>/.exec(body)?.[1] ?? body.slice(0, 40)}`;
  }
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const line = 'ping from the ctfleet demo';
    let reply = '';
    socket.setTimeout(3_000, () => {
      socket.destroy();
      resolve(`no answer (${reply.length} bytes)`);
    });
    socket.on('connect', () => socket.write(`${line}\n`));
    socket.on('data', (data) => {
      reply += data.toString();
      if (reply.includes('\n')) {
        socket.destroy();
        resolve(`echoed "${reply.trim()}"`);
      }
    });
    socket.on('error', (error) => {
      resolve(`error: ${error.message}`);
    });
  });
}

const namespace = process.argv[2] ?? 'ctf-demo';

async function report(): Promise<{ rows: string[][]; answered: boolean }> {
  const list = JSON.parse(execFileSync('kubectl', ['get', 'challengeinstances', '-n', namespace, '-o', 'json'], { encoding: 'utf8' })) as { items: Item[] };
  const rows = await Promise.all(
    list.items.map(async (item) => {
      const url = item.status?.endpoints?.[0]?.url ?? '';
      const answer = url === '' ? '-' : await probe(url).catch((error: unknown) => `error: ${(error as Error).message}`);
      return [item.spec.team, item.spec.challengeRef?.name ?? item.spec.challenge ?? '-', item.status?.phase ?? 'Pending', url === '' ? '-' : url, answer];
    }),
  );
  return { rows, answered: rows.every((row) => !/^(error|no answer)/.test(row[4] ?? '')) };
}

// A rerun of the demo finds its instances Running from last time while their
// containers stopped with the stack; the worker's first sweep starts them again
// within seconds, so the endpoints get up to 30 s to answer.
const deadline = Date.now() + 30_000;
let result = await report();
while (!result.answered && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  result = await report();
}
console.log(formatTable(['team', 'challenge', 'phase', 'endpoint', 'answered'], result.rows));
