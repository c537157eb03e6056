<?php

declare(strict_types=1);

namespace Distarch\Worker;

/**
 * Writes lines to the master: frames, and `echo` output held back until its line
 * is complete, so that a frame never lands inside a printed line. Sends `hello`
 * before the first line, and rate-limits `ping`.
 */
final class Output
{
    /** @var resource */
    private $stream;
    private ?string $hello;
    private float $lastWrite = -INF;
    private string $pending = '';
    private bool $capturing = false;
    /** @var callable(): void */
    private $onBroken;

    /** Shortest time between two pings, in seconds. */
    public float $pingInterval = 1.0;

    /**
     * @param resource         $stream   where lines go (STDOUT)
     * @param callable(): void $onBroken called when a write fails: the master is gone
     */
    public function __construct($stream, string $hello, callable $onBroken)
    {
        $this->stream = $stream;
        $this->hello = $hello;
        $this->onBroken = $onBroken;
    }

    /**
     * Routes `echo`/`print` output through this writer (an output buffer that passes
     * whole lines only). What is pending at the end is written with a newline.
     */
    public function captureEcho(): void
    {
        if ($this->capturing) {
            return;
        }
        $this->capturing = true;
        ob_start(function (string $buffer, int $phase): string {
            $this->pending .= $buffer;
            $final = ($phase & PHP_OUTPUT_HANDLER_FINAL) !== 0 || ($phase & PHP_OUTPUT_HANDLER_CLEAN) !== 0;
            $cut = strrpos($this->pending, "\n");
            if ($cut !== false) {
                $this->write(substr($this->pending, 0, $cut + 1));
                $this->pending = (string) substr($this->pending, $cut + 1);
            }
            if ($final) {
                $this->finishLine();
            }
            return '';
        }, 1);
    }

    /** Writes the pending partial `echo` line, if any, ended by a newline. */
    public function finishLine(): void
    {
        if ($this->pending !== '') {
            $line = $this->pending . "\n";
            $this->pending = '';
            $this->write($line);
        }
    }

    /** Writes whole lines (the text ends with "\n"); false when the master is gone. */
    public function write(string $lines): bool
    {
        if ($this->hello !== null) {
            $lines = $this->hello . $lines;
            $this->hello = null;
        }
        $this->lastWrite = microtime(true);
        $length = strlen($lines);
        for ($done = 0; $done < $length; $done += $written) {
            $written = @fwrite($this->stream, $done === 0 ? $lines : substr($lines, $done));
            if ($written === false || $written === 0) {
                ($this->onBroken)();
                return false;
            }
        }
        return true;
    }

    /** Writes `hello` unless it was written already. */
    public function hello(): void
    {
        if ($this->hello !== null) {
            $this->write('');
        }
    }

    /** Writes a ping unless a line was written less than the interval ago. */
    public function ping(): bool
    {
        if (microtime(true) - $this->lastWrite < $this->pingInterval) {
            return false;
        }
        return $this->write(Frames::encode(['type' => 'ping']));
    }
}
