// sdk.mjs: loads the built SDK (clients/typescript/dist/) for the SDK tests,
// with a clear message when it has not been built.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const SDK_DIR = fileURLToPath(new URL('../../../clients/typescript/', import.meta.url));
const entry = new URL('../../../clients/typescript/dist/index.js', import.meta.url);

if (!existsSync(fileURLToPath(entry))) {
  const msg = `The TypeScript SDK is not built: ${fileURLToPath(entry)} is missing.\n` +
    `Build it with:  (cd clients/typescript && npm ci && npm run build)   (scripts/test does this before ctest)`;
  console.error(msg);
  throw new Error(msg);
}

export const sdk = await import(pathToFileURL(fileURLToPath(entry)).href);
