#!/usr/bin/env node
import { runDoctor } from './cli/doctor.ts';
import { parseOutputFormat, UsageError } from './cli/output.ts';
import { ConfigError, loadConnectionConfig } from './config/config.ts';
import { describeError } from './health/dependency-check.ts';
import { VERSION } from './version.ts';

const USAGE = `Usage: ctfleet <command> [flags]

Commands:
  doctor [-o table|json]   check that Kubernetes, Redis and Docker answer
  version                  print ctfleet's version
  help                     print this text

Environment: KUBECONFIG, REDIS_URL, CTFLEET_REDIS_PREFIX, DOCKER_HOST
(\`eval "$(hack/stack.sh env)"\` points them at the local stack).`;

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'doctor':
      return runDoctor(loadConnectionConfig(process.env), parseOutputFormat(args));
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
