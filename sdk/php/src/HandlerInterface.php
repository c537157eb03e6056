<?php

declare(strict_types=1);

namespace Distarch\Worker;

use Psr\Log\LoggerInterface;

/**
 * A worker's view of itself and of the master, with the methods of the original
 * library's Slave\HandlerInterface.
 */
interface HandlerInterface
{
    /** The instance id: 1-based, unique across the run. */
    public function getId(): int;

    /** The 1-based index of this instance within its group. */
    public function getGroupId(): int;

    /** Instances in the group (updated by `group_count` frames). */
    public function getGroupCount(): int;

    /** The group: name and params. */
    public function getGroupConfig(): GroupConfig;

    /** A PSR-3 logger whose records become log frames. */
    public function getLogger(): LoggerInterface;

    /** True once the worker should stop: `stop` frame, SIGTERM, or the master is gone. */
    public function mustStop(): bool;

    /** Tells the master this worker is alive (at most one frame a second). */
    public function ping(): void;

    /** Sleeps up to `seconds`, waking on stop; true after a full sleep. */
    public function sleep(int|float $seconds, bool $ping = true): bool;

    /** Raises the stop flag from inside. */
    public function stop(): void;

    /**
     * Runs the work: `$callback($handler, $logger)`, then `ended`.
     *
     * @param callable(static, LoggerInterface): mixed $callback
     */
    public function run(callable $callback): void;
}
