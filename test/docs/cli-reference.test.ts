/**
 * Holds docs/cli.md to the commander program: every command has its section, every option of a
 * command is in that section, every global option and exit code is in its table, and nothing
 * documented is gone from the program.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { CLI_STAGES, createProgram } from '../../src/cli/program.js';
import { STAGES } from '../../src/config/schema.js';
import { baseEnv, cli, tempDir } from '../cli/helpers.js';

let doc: string;
let program: Command;

beforeAll(async () => {
  doc = await readFile(fileURLToPath(new URL('../../docs/cli.md', import.meta.url)), 'utf8');
  program = createProgram({ stdout: { write: () => true }, stderr: { write: () => true } });
});

/** Every command that runs something, with its full name (`runs start`). */
function leafCommands(command: Command, prefix = ''): Array<{ name: string; command: Command }> {
  return command.commands.flatMap((sub) => {
    const name = `${prefix}${sub.name()}`;
    return sub.commands.length > 0 ? leafCommands(sub, `${name} `) : [{ name, command: sub }];
  });
}

/** The text of a `##`/`###` section, from its heading to the next heading of the same or a higher level. */
function section(heading: RegExp): string {
  const lines = doc.split('\n');
  const start = lines.findIndex((line) => heading.test(line));
  if (start < 0) return '';
  const level = /^#+/.exec(lines[start]!)![0].length;
  const end = lines.findIndex((line, i) => i > start && /^#+ /.test(line) && /^#+/.exec(line)![0].length <= level);
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('docs/cli.md', () => {
  it('has a section for every command, with its arguments and every option', () => {
    const commands = leafCommands(program);
    expect(commands.map((c) => c.name)).toEqual([
      'training',
      'conversion',
      'benchmark',
      'hpo',
      'file',
      'dir',
      'archive',
      'validate',
      'convert-peft',
      'publish',
      'register',
      'runs start',
      'runs end',
      'resume list',
      'resume clear',
    ]);
    for (const { name, command } of commands) {
      const args = command.registeredArguments.map((a) => (a.required ? `<${a.name()}${a.variadic ? '...' : ''}>` : `[${a.name()}]`));
      const heading = `### \`artifact-uploader ${[name, ...args].join(' ')}\``;
      const text = section(new RegExp(`^${escape(heading)}$`));
      expect(text, `missing section "${heading}"`).not.toBe('');
      for (const option of command.options) {
        expect(text, `${name}: option ${option.flags}`).toContain(`\`${option.flags}\``);
      }
      // Nothing documented that the command does not have.
      const documented = [...text.matchAll(/^\| `(-[^`]+)` \|/gm)].map((m) => m[1]);
      expect(documented.sort(), name).toEqual(command.options.map((o) => o.flags).sort());
    }
  });

  it('lists every global option in the global options table, and only those', () => {
    const text = section(/^## Global options$/);
    const documented = [...text.matchAll(/^\| `(-[^`]+)` \|/gm)].map((m) => m[1]!).sort();
    const flags = [...program.options.map((o) => o.flags), '-h, --help'].sort();
    expect(documented).toEqual(flags);
  });

  it("says in file's and dir's --help what --artifact-path defaults to with --kind, as the docs do and a dry run shows", async () => {
    for (const name of ['file', 'dir']) {
      const option = program.commands.find((c) => c.name() === name)!.options.find((o) => o.long === '--artifact-path')!;
      expect(option.description, name).toMatch(/\(default: with --kind, that kind's artifactPath in the config, else the root\)$/);
    }
    const cwd = tempDir();
    writeFileSync(join(cwd, 'm.json'), '{}');
    const run = await cli(['file', '--stage', 'training', '--kind', 'metrics', 'm.json', '--dry-run', '--json'], { cwd });
    expect(run.json().results[0].artifactPath).toBe('metrics/m.json');
  });

  it("names every exit code in the program's --help, as the docs' table does", async () => {
    const help = (await cli(['--help'])).stdout;
    const line = help.split('\n').find((l) => l.includes('# Exit codes:'));
    for (const code of Object.values(EXIT_CODES)) expect(line, String(code)).toMatch(new RegExp(`[:,] ${code} `));
  });

  it("names every metric of an upload's --json result in docs/uploader.md's Metrics section, which docs/cli.md points to", async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'logs'));
    writeFileSync(join(cwd, 'logs', 'a.txt'), 'a');
    writeFileSync(join(cwd, 'logs', 'b.txt'), 'b');
    const runId = (await cli(['runs', 'start'], { cwd })).stdout.trim();
    const run = await cli(['dir', '--stage', 'training', 'logs', '--json'], { cwd, env: baseEnv({ MLFLOW_RUN_ID: runId }) });
    const metrics = Object.keys(run.json().results[0].metrics as Record<string, number>);
    expect(metrics).toContain('peakConcurrency');
    const uploaderDoc = await readFile(fileURLToPath(new URL('../../docs/uploader.md', import.meta.url)), 'utf8');
    const section = uploaderDoc.slice(uploaderDoc.indexOf('### Metrics and stats'), uploaderDoc.indexOf('## Progress'));
    expect(metrics.filter((name) => !section.includes(`\`${name}\``))).toEqual([]);
  });

  it('says in --help that --max-concurrency defaults to the concurrency set, wherever it was set: a config file of 4 stays at 4', async () => {
    const option = program.options.find((o) => o.long === '--max-concurrency')!;
    expect(option.description).toMatch(/\(default: 64 with the default concurrency of 8, else the concurrency set: --concurrency, ARTIFACT_UPLOADER_CONCURRENCY or the config file\)$/);
    const cwd = tempDir();
    writeFileSync(join(cwd, 'artifact-uploader.yaml'), 'concurrency: 4\n');
    mkdirSync(join(cwd, 'logs'));
    for (let i = 0; i < 6; i++) writeFileSync(join(cwd, 'logs', `${i}.txt`), String(i));
    const runId = (await cli(['runs', 'start'], { cwd })).stdout.trim();
    const run = await cli(['dir', '--stage', 'training', 'logs', '--json'], { cwd, env: baseEnv({ MLFLOW_RUN_ID: runId }) });
    expect(run.json().results[0].metrics.peakConcurrency, run.stderr).toBe(4);
  });

  it('lists every exit code with its name', () => {
    const text = section(/^## Exit codes$/);
    const rows = [...text.matchAll(/^\| (\d+) \| `([A-Z_]+)` \|/gm)].map((m) => [Number(m[1]), m[2]]);
    expect(rows).toEqual(Object.entries(EXIT_CODES).map(([name, code]) => [code, name]));
  });

  it('has the stages of the config schema as --stage choices', () => {
    expect([...CLI_STAGES]).toEqual([...STAGES]);
    const stage = program.options.find((o) => o.long === '--stage');
    expect(stage?.argChoices).toEqual([...STAGES]);
  });
});
