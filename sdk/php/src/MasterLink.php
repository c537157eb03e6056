<?php

declare(strict_types=1);

namespace Distarch\Worker;

/**
 * Reads the master's frames from stdin without blocking the script: a `stop` frame
 * or the end of stdin (the master is gone) raises the stop flag, a `group_count`
 * frame updates the count. PHP has no threads, so the SDK reads whenever the script
 * calls into it (mustStop, sleep, ping, any log) and waits on stdin itself in sleep.
 */
final class MasterLink
{
    public const STOP_REQUESTED = 'stop requested';
    public const MASTER_GONE = 'master gone';
    /** Longest line kept from the master: a `job` frame carries up to 1 MiB. */
    private const MAX_LINE = 2097152;

    /** @var resource */
    private $stream;
    private string $buffer = '';
    private ?string $reason = null;
    private bool $eof = false;
    /** @var null|callable(): void */
    private $onMasterGone;

    public int $groupCount;
    /** @var list<array{0: int, 1: mixed}> jobs received and not taken yet */
    private array $jobs = [];

    /**
     * @param resource              $stream       stdin
     * @param null|callable(): void $onMasterGone called once when stdin ends
     */
    public function __construct($stream, int $groupCount, ?callable $onMasterGone = null)
    {
        $this->stream = $stream;
        $this->groupCount = $groupCount;
        $this->onMasterGone = $onMasterGone;
        stream_set_blocking($this->stream, false);
    }

    /** Why the worker should stop, or null. */
    public function reason(): ?string
    {
        return $this->reason;
    }

    /** Raises the stop flag; MASTER_GONE overrides STOP_REQUESTED. */
    public function raise(string $reason): void
    {
        if ($this->reason !== self::MASTER_GONE) {
            $this->reason = $reason;
        }
    }

    /** Reads whatever the master sent, without blocking. */
    public function poll(): void
    {
        while (!$this->eof) {
            $chunk = @fread($this->stream, 65536);
            if ($chunk === false || $chunk === '') {
                if ($chunk === false || feof($this->stream)) {
                    $this->ended();
                }
                return;
            }
            $this->feed($chunk);
        }
    }

    /**
     * Waits up to `seconds` for the master (a frame or the end of stdin), reading
     * as it comes; returns early once the worker must stop.
     */
    public function wait(float $seconds): void
    {
        $deadline = microtime(true) + $seconds;
        $this->poll();
        while ($this->reason === null) {
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                return;
            }
            if ($this->eof) {
                usleep((int) (min($left, 0.05) * 1000000) + 1000);
                continue;
            }
            $read = [$this->stream];
            $write = $except = null;
            $sec = (int) floor($left);
            // Interrupted by a signal (SIGTERM): false, and the handler has run.
            @stream_select($read, $write, $except, $sec, (int) (($left - $sec) * 1000000));
            $this->poll();
        }
    }

    private function feed(string $chunk): void
    {
        $this->buffer .= $chunk;
        while (($cut = strpos($this->buffer, "\n")) !== false) {
            $this->line(substr($this->buffer, 0, $cut));
            $this->buffer = substr($this->buffer, $cut + 1);
        }
        if (strlen($this->buffer) > self::MAX_LINE) {
            $this->buffer = "\0"; // an overlong line is no frame: drop it up to its newline
        }
    }

    /**
     * The next job received, or null. Waits up to `seconds` for one (reading
     * stdin) unless the worker must stop.
     *
     * @return null|array{0: int, 1: mixed}
     */
    public function takeJob(float $seconds): ?array
    {
        $deadline = microtime(true) + $seconds;
        $this->poll();
        while ($this->jobs === [] && $this->reason === null && !$this->eof) {
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                return null;
            }
            $read = [$this->stream];
            $write = $except = null;
            $sec = (int) floor($left);
            @stream_select($read, $write, $except, $sec, (int) (($left - $sec) * 1000000));
            $this->poll();
        }
        return array_shift($this->jobs);
    }

    private function line(string $line): void
    {
        if (str_starts_with($line, "\x1e") && str_contains(substr($line, 0, 64), '"job"')) {
            $obj = json_decode(substr($line, 1));
            if ($obj instanceof \stdClass && ($obj->type ?? null) === 'job') {
                if (is_int($obj->id ?? null)) {
                    $this->jobs[] = [$obj->id, $obj->payload ?? null];
                }
                return;
            }
        }
        $frame = Frames::parseMasterLine($line);
        if ($frame === null) {
            return;
        }
        if ($frame[0] === 'stop') {
            $this->raise(self::STOP_REQUESTED);
        } elseif ($frame[0] === 'group_count' && isset($frame[1])) {
            $this->groupCount = $frame[1];
        }
    }

    private function ended(): void
    {
        if ($this->buffer !== '') {
            $this->line($this->buffer);
            $this->buffer = '';
        }
        $this->eof = true;
        $this->raise(self::MASTER_GONE);
        if ($this->onMasterGone !== null) {
            ($this->onMasterGone)();
        }
    }
}
