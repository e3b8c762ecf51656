#!/usr/bin/env node
import { parseOutputFormat, UsageError } from './cli/output.ts';
import { ConfigError, loadConnectionConfig, loadNamespaces, loadRuntimeConfig } from './config/config.ts';
import { describeError } from './health/dependency-check.ts';
import { VERSION } from './version.ts';

const USAGE = `Usage: ctfleet <command> [flags]

Commands:
  controller               run the ChallengeInstance controller
  worker                   run a worker on this Docker node
  api                      run the platform API (REST, bearer tokens; docs/api/openapi.json)
  all                      run controller and worker (and the API when tokens are set) in one process
  doctor [-o table|json]   check that Kubernetes, Redis and Docker answer
  instances [-n NS]        instances with phase, endpoint, node and their last job's state
  challenges [-n NS]       Challenges: image, flag kind/delivery, their instances per phase
  workers                  worker nodes: capacity, running, version, last heartbeat (exit 3: none alive)
  queue stats              jobs per queue and state
  queue active|waiting|failed   list those jobs (instance, attempts, progress, reason)
  queue retry ID…|--all    retry failed jobs (exit 3: no such failed job)
  queue purge [--yes]      remove waiting and delayed jobs; asks first; never touches Kubernetes
  uninstall --yes [--instances|--challenges] [--timeout S]
                           what the chart's delete hooks run: delete every ChallengeInstance in
                           CTFLEET_NAMESPACES (all when empty) and wait until their containers are
                           removed; then take ctfleet's finalizer off the Challenges (exit 1: timed out)
  (every command takes -o table|json; exit codes: 0 ok, 1 a dependency failed, 2 usage, 3 nothing to act on)
  version                  print ctfleet's version
  help                     print this text

Environment: KUBECONFIG, REDIS_URL, CTFLEET_REDIS_PREFIX, DOCKER_HOST, CTFLEET_LOG_LEVEL,
CTFLEET_CONTROLLER_CONCURRENCY, CTFLEET_NODE_NAME, CTFLEET_ADVERTISE_ADDRESS,
CTFLEET_BIND_ADDRESS, CTFLEET_PORT_RANGE, CTFLEET_WORKER_CONCURRENCY,
CTFLEET_READINESS_TIMEOUT_SECONDS (see docs/configuration.md).
\`eval "$(hack/stack.sh env)"\` points the connections at the local stack.`;

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...args] = argv;
  // Each command loads only what it uses: a controller never loads dockerode, a
  // `ctfleet version` nothing at all.
  const admin = (): Promise<typeof import('./cli/admin.ts')> => import('./cli/admin.ts');
  switch (command) {
    case 'controller':
    case 'worker':
    case 'api':
    case 'all':
    {
      const config = loadRuntimeConfig(process.env);
      const code = await (await import('./app/run.ts')).runRole(command, config);
      // Everything is closed; a job cut short and handed back may still hold a
      // timer, and must not keep the process (and the pod) alive.
      return process.exit(code);
    }
    case 'doctor':
      return (await import('./cli/doctor.ts')).runDoctor(loadConnectionConfig(process.env), parseOutputFormat(args));
    case 'workers':
      return (await admin()).runWorkers(loadConnectionConfig(process.env), parseOutputFormat(args));
    case 'queue':
      return (await admin()).runQueue(loadConnectionConfig(process.env), args, parseOutputFormat(args));
    case 'instances':
      return (await admin()).runInstances(loadConnectionConfig(process.env), args, parseOutputFormat(args));
    case 'challenges':
      return (await admin()).runChallenges(loadConnectionConfig(process.env), args, parseOutputFormat(args));
    case 'uninstall':
    {
      const { parseUninstallArgs, runUninstall } = await import('./cli/uninstall.ts');
      return runUninstall(loadConnectionConfig(process.env), { ...parseUninstallArgs(args), namespaces: loadNamespaces(process.env) });
    }
    case 'version':
    case '--version':
      process.stdout.write(`ctfleet ${VERSION}\n`);
      return 0;
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return 0;
    default:
      throw new UsageError(command === undefined ? 'no command given' : `unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`ctfleet: ${error.message}\n\n${USAGE}\n`);
      process.exitCode = 2;
    } else if (error instanceof ConfigError) {
      process.stderr.write(`ctfleet: ${error.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`ctfleet: ${describeError(error)}\n`);
      process.exitCode = 1;
    }
  },
);
