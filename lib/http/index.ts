// The HTTP edge's public surface (for tools and the harness): request parsing, the JSON scanner,
// problem details and the middy engine the HTTP functions are built with.
export { httpHandler, json, MAX_BODY_BYTES, type HttpEvent, type HttpFn, type HttpResult } from './handler.js';
export { MAX_JSON_DEPTH, scanJson } from './json.js';
export { circuitIdParam, authorityParam, createCircuitBody, updateRoutesBody, workerBody, ifMatchHeader, listQuery } from './requests.js';
export { HttpProblem, problemResponse, badRequest, type FieldError } from './problem.js';
export { toProblem, fieldErrors } from './errors.js';
export { API, COMPONENTS, UNROUTED, type RouteSpec, type Answer, type Method, type CircuitJson, type WorkerJson } from './contract.js';
