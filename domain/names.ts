/**
 * Names shared by the API, the workflow and the worker. Constants only: this module is bundled
 * into the deterministic workflow sandbox.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Workflow type that runs one job. Workflow id = job id. */
export const RUN_JOB_WORKFLOW = 'runJob';

/**
 * Custom search attributes, registered when the Temporal server starts (scripts/temporal-init.sh), so
 * `temporal workflow list --query "HodeiState='RUNNING'"` and the Web UI filter jobs like the API.
 */
export const STATE_KEY = defineSearchAttributeKey('HodeiState', SearchAttributeType.KEYWORD);
export const LABELS_KEY = defineSearchAttributeKey('HodeiLabels', SearchAttributeType.KEYWORD_LIST);
export const HOST_KEY = defineSearchAttributeKey('HodeiHost', SearchAttributeType.KEYWORD);
