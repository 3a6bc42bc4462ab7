import { z } from '@hono/zod-openapi';

/** Plain decimal digits: no sign, no hex or exponent, no spaces (16 digits hold every safe integer). */
const DECIMAL = /^[0-9]{1,16}$/;

/**
 * An integer in a query parameter or header, written in decimal digits only. `z.coerce.number()`
 * would take `0x10`, ` 1`, `1e3` and an empty string (as 0): each of those is a 400 here. The
 * OpenAPI document shows it as the integer it is.
 */
export function decimalInt(min: number, max: number, description?: string) {
  return z
    .string()
    .regex(DECIMAL, 'must be an integer in decimal digits')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .openapi({ type: 'integer', minimum: min, maximum: max, ...(description ? { description } : {}) });
}
