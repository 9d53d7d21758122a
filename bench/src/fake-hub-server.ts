/**
 * The fake Hub as a standalone process for the bench: prints `{"url","token"}` on its first
 * stdout line and serves until SIGTERM. The request log keeps bodies, so it is emptied often.
 */
import { startFakeHub } from '../../test/support/fake-hub/index.js';

const hub = await startFakeHub();
setInterval(() => hub.clearLog(), 100).unref();
process.stdout.write(`${JSON.stringify({ url: hub.url, token: hub.token })}\n`);
process.on('SIGTERM', () => {
  void hub.stop().then(() => process.exit(0));
});
