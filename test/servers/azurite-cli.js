// azurite-cli.js: starts Azurite's Blob service (npm azurite 3.35.0) with the
// flags given, like node_modules/azurite/dist/src/blob/main.js, but exits
// when its parent process (AZURITE_PARENT_PID, else the one at start) goes
// away (checked twice a second), so a test runner that dies without
// cleaning up (SIGKILL) leaves no server behind; it then also removes the
// directory named by AZURITE_ORPHAN_RMDIR (the runner's temp dir, its log).
'use strict';
const path = require('path');
const parent = Number(process.env.AZURITE_PARENT_PID) || process.ppid;
setInterval(() => {
  if (process.ppid === parent) return;
  const dir = process.env.AZURITE_ORPHAN_RMDIR;  // the runner's temp dir
  if (dir) require('fs').rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}, 500).unref();
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
require(path.join(__dirname, 'node_modules', 'azurite', 'dist', 'src', 'blob',
                  'main.js'));
