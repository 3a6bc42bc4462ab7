import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import GithubSlugger from 'github-slugger';
import { marked, type Token, type Tokens } from 'marked';
import { describe, expect, it } from 'vitest';

// The README is the entry page and docs/*.md hold the rest: every link stays inside the
// repository (or points at the running product on loopback), and every settings name the code
// reads is documented once, in docs/settings.md.
const ROOT = path.resolve(import.meta.dirname, '../..');
const PAGES = [
  'README.md',
  ...readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];
const LOOPBACK = /^https?:\/\/(127\.0\.0\.1|localhost)(:\d+)?(\/|$)/;

function tokensOf(page: string): Token[] {
  return marked.lexer(readFileSync(path.join(ROOT, page), 'utf8'));
}

// walkTokens returns what async callbacks would; these are synchronous.
function linksOf(page: string): string[] {
  const links: string[] = [];
  void marked.walkTokens(tokensOf(page), (token) => {
    if (token.type === 'link' || token.type === 'image') links.push((token as Tokens.Link | Tokens.Image).href);
  });
  return links;
}

function anchorsOf(page: string): Set<string> {
  const slugger = new GithubSlugger();
  const anchors = new Set<string>();
  void marked.walkTokens(tokensOf(page), (token) => {
    if (token.type === 'heading') anchors.add(slugger.slug((token as Tokens.Heading).text.replace(/`/g, '')));
  });
  return anchors;
}

describe('the README and docs/', () => {
  it('link only to files and headings of the repository, or to the product on loopback', () => {
    const broken: string[] = [];
    for (const page of PAGES) {
      for (const href of linksOf(page)) {
        if (LOOPBACK.test(href)) continue;
        if (/^[a-z][a-z0-9+.-]*:/i.test(href)) {
          broken.push(`${page}: ${href} points outside the repository`);
          continue;
        }
        const [file = '', anchor] = href.split('#');
        const target = file === '' ? page : path.normalize(path.join(path.dirname(page), file));
        if (!existsSync(path.join(ROOT, target))) broken.push(`${page}: ${href} (no ${target})`);
        else if (anchor && target.endsWith('.md') && !anchorsOf(target).has(anchor))
          broken.push(`${page}: ${href} (no heading #${anchor} in ${target})`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('the README links every docs page and stays an entry page', () => {
    const linked = new Set(linksOf('README.md').map((href) => href.split('#')[0]));
    expect(PAGES.filter((page) => page !== 'README.md' && !linked.has(page))).toEqual([]);
    expect(readFileSync(path.join(ROOT, 'README.md'), 'utf8').split('\n').length).toBeLessThanOrEqual(200);
  });

  it('docs/settings.md names every setting domain/config.ts reads, each in one row', () => {
    const config = readFileSync(path.join(ROOT, 'domain/config.ts'), 'utf8');
    const schema = config.slice(
      config.indexOf('const ConfigSchema = z.object({'),
      config.indexOf('\n});', config.indexOf('const ConfigSchema')),
    );
    const names = [...schema.matchAll(/^ {2}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(30);
    const settings = readFileSync(path.join(ROOT, 'docs/settings.md'), 'utf8');
    const rows = (name: string) => settings.split('\n').filter((line) => line.startsWith(`| \`${name}\``)).length;
    expect(names.filter((name) => rows(name) !== 1 && !/^HODEI_MAX_JOB_/.test(name))).toEqual([]);
    // The four maxima share one row.
    expect(settings).toContain('| `HODEI_MAX_JOB_MEMORY_MB` / `_CPUS` / `_PIDS_LIMIT` / `_SCRATCH_MB` |');
  });
});
