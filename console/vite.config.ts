import { fileURLToPath } from 'node:url';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';

const consoleRoot = fileURLToPath(new URL('.', import.meta.url));

// The dev server forwards API calls to a locally running appliance, by default at the
// address and port that appliance/platform/config.ts uses. Its TLS certificate is
// self-signed, so the proxy does not verify it.
const applianceHost = process.env.APPLIANCE_HOST ?? '127.0.0.1';
const appliancePort = process.env.APPLIANCE_PORT ?? '8443';

export default defineConfig({
  root: consoleRoot,
  base: '/',
  plugins: [svelte({ compilerOptions: { runes: true } })],
  build: {
    outDir: fileURLToPath(new URL('./dist', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
  },
  server: {
    host: '127.0.0.1',
    proxy: {
      '/api': { target: `https://${applianceHost}:${appliancePort}`, secure: false },
    },
  },
  preview: {
    host: '127.0.0.1',
  },
});
