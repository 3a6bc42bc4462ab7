import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

interface Doc {
  paths: Record<
    string,
    Record<string, { responses?: Record<string, { content?: Record<string, { schema?: unknown }> }> }>
  >;
}

/** Checks API answers against the API's own `/openapi.json`. */
export class SpecValidator {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly templates: Array<{ template: string; regex: RegExp }>;

  constructor(private readonly doc: Doc) {
    (addFormats as unknown as (ajv: Ajv2020) => void)(this.ajv);
    this.ajv.addSchema(doc as object, 'openapi');
    this.templates = Object.keys(doc.paths).map((template) => ({
      template,
      regex: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`),
    }));
  }

  /** The problems of one answer (empty when it conforms): route, status, content type, body. */
  check(method: string, url: string, status: number, contentType: string | null, body: string): string[] {
    const pathname = new URL(url, 'http://x').pathname;
    const match = this.templates.find((t) => t.regex.test(pathname));
    if (!match) return [`${method} ${pathname} is not in /openapi.json`];
    const op = this.doc.paths[match.template]![method.toLowerCase()];
    if (!op) return [`${method} ${match.template} is not in /openapi.json`];
    const response = op.responses?.[String(status)] ?? op.responses?.default;
    if (!response) return [`${method} ${match.template} answered ${status}, which /openapi.json does not list`];
    if (!response.content) return [];
    const media = (contentType ?? '').split(';')[0]!.trim();
    if (!(media in response.content))
      return [`${method} ${match.template} ${status}: content type ${media} not listed`];
    if (media !== 'application/json') return [];
    const pointer = [
      'paths',
      match.template,
      method.toLowerCase(),
      'responses',
      String(status) in op.responses! ? String(status) : 'default',
      'content',
      media,
      'schema',
    ]
      .map((p) => encodeURIComponent(p.replace(/~/g, '~0').replace(/\//g, '~1')))
      .join('/');
    const validate = this.ajv.getSchema(`openapi#/${pointer}`);
    if (!validate) return [`no schema at ${pointer}`];
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      return [`${method} ${match.template} ${status}: body is not JSON`];
    }
    if (validate(json)) return [];
    return (validate.errors ?? []).map(
      (e) => `${method} ${match.template} ${status}: ${e.instancePath || '(body)'} ${e.message}`,
    );
  }
}
