<?php

declare(strict_types=1);

namespace Distarch\Worker;

/**
 * One work item of a job pool (docs/protocol.md §12). Answer it once, with done()
 * or fail(); Handler::jobs() hands them out.
 */
final class Job
{
    private bool $answered = false;

    /** @param \Closure(array<string, mixed>): void $answer sends the answer frame */
    public function __construct(
        public readonly int $id,
        public readonly mixed $payload,
        private \Closure $answer,
    ) {
    }

    /** Reports success with `$result` (any JSON value; null for none). */
    public function done(mixed $result = null): void
    {
        $frame = ['type' => 'done', 'id' => $this->id];
        if ($result !== null) {
            $frame['result'] = $result;
        }
        $this->send($frame);
    }

    /** Reports a failure; `$retryable = false` sends it to the dead letters now. */
    public function fail(string $error, bool $retryable = true): void
    {
        $this->send(['type' => 'failed', 'id' => $this->id, 'error' => $error, 'retryable' => $retryable]);
    }

    public function isAnswered(): bool
    {
        return $this->answered;
    }

    /** @param array<string, mixed> $frame */
    private function send(array $frame): void
    {
        if ($this->answered) {
            throw new \LogicException("job {$this->id} was answered already");
        }
        $this->answered = true;
        ($this->answer)($frame);
    }
}
