#!/usr/bin/env node
// The `hodei` command: runs cli/main.ts through tsx, like the rest of the project.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
