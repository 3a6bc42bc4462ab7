import { defineConfig } from 'vite';

/** Builds the page (index.html + src/) into .tools/web, which the API serves at `/`. */
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  logLevel: 'warn',
  build: {
    outDir: '../.tools/web',
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    // Nothing inlined as data: URLs, so the page's CSP can stay strict.
    assetsInlineLimit: 0,
  },
});
