// RFC 9457 problem details: every error the API returns has this shape and content type.
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';

export interface FieldError {
  /** Dotted path of the offending field, e.g. "routes.3.port" ("body" for the body itself). */
  field: string;
  message: string;
}

export class HttpProblem extends Error {
  override name = 'HttpProblem';
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail?: string,
    readonly extra: { errors?: FieldError[]; headers?: Record<string, string>; type?: string } = {},
  ) {
    super(detail ?? title);
  }
}

export function problemResponse(p: HttpProblem, instance?: string): APIGatewayProxyStructuredResultV2 {
  const body: Record<string, unknown> = {
    type: p.extra.type ?? 'about:blank',
    title: p.title,
    status: p.status,
  };
  if (p.detail !== undefined) body.detail = p.detail;
  if (instance !== undefined) body.instance = instance;
  if (p.extra.errors !== undefined) body.errors = p.extra.errors;
  return {
    statusCode: p.status,
    headers: { 'content-type': 'application/problem+json', ...p.extra.headers },
    body: JSON.stringify(body),
  };
}

export const badRequest = (detail: string, errors?: FieldError[]) =>
  new HttpProblem(400, 'Bad Request', detail, errors ? { errors } : {});
