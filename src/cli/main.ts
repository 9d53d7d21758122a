// Placeholder entry until the CLI lands (issue 6): prints the version.
import { VERSION } from '../version.js';

process.stdout.write(`${VERSION}\n`);
