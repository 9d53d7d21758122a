/**
 * docs/README.md is the index of every page, and no relative link in the docs (or the README)
 * is broken: the file exists and, for `page.md#anchor`, the page has that heading.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const docsDir = join(root, 'docs');

function pages(): string[] {
  const top = readdirSync(docsDir).filter((f) => f.endsWith('.md')).map((f) => join(docsDir, f));
  const stagesDir = join(docsDir, 'stages');
  const stages = existsSync(stagesDir) ? readdirSync(stagesDir).filter((f) => f.endsWith('.md')).map((f) => join(stagesDir, f)) : [];
  return [...top, ...stages].sort();
}

/** Markdown links outside code blocks and inline code: [text](target). */
function links(markdown: string): string[] {
  const text = markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  const text = markdown.replace(/^```[\s\S]*?^```/gm, '');
  const out = new Set<string>();
  for (const m of text.matchAll(/^#{1,6} (.+)$/gm)) {
    out.add(
      m[1]!
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/ /g, '-'),
    );
  }
  return out;
}

describe('docs index and links', () => {
  it('docs/README.md links every page of docs/ and docs/stages/', () => {
    const index = readFileSync(join(docsDir, 'README.md'), 'utf8');
    const linked = new Set(links(index).map((l) => resolve(docsDir, l.split('#')[0]!)));
    for (const page of pages()) {
      if (page === join(docsDir, 'README.md')) continue;
      expect(linked.has(page), `docs/README.md does not link ${relative(root, page)}`).toBe(true);
    }
  });

  it('every relative link in docs/ and README.md points to a file (and heading) that exists', () => {
    const broken: string[] = [];
    for (const page of [join(root, 'README.md'), ...pages()]) {
      const markdown = readFileSync(page, 'utf8');
      for (const link of links(markdown)) {
        if (/^[a-z]+:/i.test(link)) continue; // http(s):, mailto:
        const [path, anchor] = link.split('#') as [string, string | undefined];
        const target = path === '' ? page : resolve(dirname(page), path);
        if (!existsSync(target)) {
          broken.push(`${relative(root, page)}: ${link} (no such file)`);
          continue;
        }
        if (anchor && target.endsWith('.md') && !anchors(readFileSync(target, 'utf8')).has(anchor)) {
          broken.push(`${relative(root, page)}: ${link} (no such heading)`);
        }
      }
    }
    expect(broken).toEqual([]);
  });
});
