// The unload dead-letter queue (SQS), read by `circuitry redrive`. An edge like events.ts: the
// services only see a DeadLetterSource.
import { DeleteMessageCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { DeadLetterSource } from './circuits/redrive.js';

export function sqsDeadLetters(queueUrl: string, client: SQSClient = new SQSClient({ maxAttempts: 3 })): DeadLetterSource {
  return {
    async receive(max) {
      const r = await client.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: Math.min(10, max), WaitTimeSeconds: 1, VisibilityTimeout: 60 }));
      return (r.Messages ?? []).map((m) => ({
        id: m.MessageId ?? '',
        body: m.Body ?? '',
        remove: async () => {
          await client.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }));
        },
      }));
    },
  };
}
