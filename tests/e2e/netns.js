// Runs a command inside a fresh network namespace with only loopback up, so that neither
// Convene nor Chromium can send a packet anywhere but 127.0.0.0/8 (and the bridge can
// only advertise loopback addresses). We run as root; `--map-root-user` keeps it working
// for an unprivileged user with user namespaces too.
import { spawnSync } from 'node:child_process';

const command = process.argv.slice(2);
if (command.length === 0) {
  console.error('usage: node netns.js COMMAND [ARGS...]');
  process.exit(2);
}
const result = spawnSync(
  'unshare',
  ['--net', '--map-root-user', 'sh', '-c', 'ip link set lo up && exec "$@"', 'netns', ...command],
  { stdio: 'inherit', env: { ...process.env, CONVENE_NETNS: '1' } },
);
if (result.error) {
  console.error(`cannot create a network namespace: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
