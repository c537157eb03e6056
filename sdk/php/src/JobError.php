<?php

declare(strict_types=1);

namespace Distarch\Worker;

/** Thrown by a serve() callback: the job failed; `retryable` says if another attempt may succeed. */
final class JobError extends \RuntimeException
{
    public function __construct(string $message, public readonly bool $retryable = true)
    {
        parent::__construct($message);
    }
}
