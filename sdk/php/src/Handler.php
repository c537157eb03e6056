<?php

declare(strict_types=1);

namespace Distarch\Worker;

use Psr\Log\LoggerInterface;

/**
 * One running instance, as seen from inside: who it is (DISTARCH_* variables),
 * how to talk to the master (frames on stdout), and whether to stop (frames on
 * stdin, SIGTERM). Its API is the original library's Slave\Handler, so that old
 * scripts only change their constructor line:
 *
 *     $handler = new Handler();
 *     $handler->run(function (Handler $handler, LoggerInterface $logger) {
 *         echo "I am {$handler->getId()}\n";                 // an info line
 *         $logger->warning('disk {disk} almost full', ['disk' => 'sda']);
 *         while (!$handler->mustStop()) {
 *             $handler->ping();
 *         }
 *     });
 *
 * Output: frames are written whole; `echo` output is held until its line is
 * complete (an output buffer), so the two never mix. `hello` goes before the
 * first line. PHP has no threads: stdin is read without blocking whenever the
 * script calls mustStop(), sleep(), ping() or logs, and sleep() waits on stdin.
 */
class Handler implements HandlerInterface
{
    public const SDK_NAME = 'distarch-worker-php';
    public const VERSION = '0.1.0';
    public const SUCCESS_EXIT_CODE = 0;
    public const FAILURE_EXIT_CODE = 1;
    public const NOT_STARTED_BY_DISTARCH_EXIT_CODE = 2;
    public const MASTER_GONE_EXIT_CODE = 3;

    private Identity $identity;
    private Output $output;
    private MasterLink $master;
    private Logger $logger;
    private GroupConfig $groupConfig;
    private bool $endedSent = false;
    /** Seconds between the end of stdin and exit(3); null: never. */
    private ?int $masterGoneExit = 5;
    /** Job pools: jobs asked for and not received, received and not answered, the most held. */
    private int $jobCredit = 0;
    private int $jobsHeld = 0;
    private int $jobLimit = 0;
    public const DEFAULT_JOB_CREDIT = 16;

    /**
     * @param null|array<string, string> $env    the variables (the environment when null)
     * @param resource|null              $stdin  where master frames come from (STDIN)
     * @param resource|null              $stdout where lines go (STDOUT)
     *
     * @throws WorkerException naming the variable that is missing or malformed
     */
    public function __construct(?array $env = null, $stdin = null, $stdout = null)
    {
        $this->identity = Identity::fromEnv($env);
        $hello = Frames::encode(['type' => 'hello', 'protocol' => Identity::PROTOCOL_VERSION, 'sdk' => self::SDK_NAME, 'version' => self::VERSION]);
        $this->master = new MasterLink($stdin ?? STDIN, $this->identity->groupCount, fn () => $this->masterGone());
        $this->output = new Output($stdout ?? STDOUT, $hello, fn () => $this->master->raise(MasterLink::MASTER_GONE));
        $this->logger = new Logger($this);
        $this->groupConfig = new GroupConfig($this->identity->group, $this->identity->params);
    }

    public function getId(): int
    {
        return $this->identity->id;
    }

    public function getGroupId(): int
    {
        return $this->identity->groupId;
    }

    public function getGroupCount(): int
    {
        $this->master->poll();
        return $this->master->groupCount;
    }

    public function getGroupConfig(): GroupConfig
    {
        return $this->groupConfig;
    }

    /** The group's name. */
    public function getGroupName(): string
    {
        return $this->identity->group;
    }

    /** Label of where this instance runs. */
    public function getHost(): string
    {
        return $this->identity->host;
    }

    /** Short random id of the run. */
    public function getRunId(): string
    {
        return $this->identity->runId;
    }

    /** How many times this instance was restarted before. */
    public function getRestart(): int
    {
        return $this->identity->restart;
    }

    /**
     * The group's params, JSON objects as arrays.
     *
     * @return array<string, mixed>
     */
    public function getParams(): array
    {
        return $this->identity->params;
    }

    /** The params as decoded objects: `{}` stays an object when sent back as JSON. */
    public function getRawParams(): \stdClass
    {
        return $this->identity->rawParams;
    }

    public function getLogger(): LoggerInterface
    {
        return $this->logger;
    }

    public function mustStop(): bool
    {
        $this->master->poll();
        return $this->master->reason() !== null;
    }

    /** Why the worker should stop ('stop requested', 'master gone'), or null. */
    public function getStopReason(): ?string
    {
        $this->master->poll();
        return $this->master->reason();
    }

    public function stop(): void
    {
        $this->master->raise(MasterLink::STOP_REQUESTED);
    }

    public function sleep(int|float $seconds, bool $ping = true): bool
    {
        $deadline = microtime(true) + $seconds;
        while (!$this->mustStop()) {
            $left = $deadline - microtime(true);
            if ($left <= 0) {
                return true;
            }
            $this->master->wait($ping ? min($left, 1.0) : $left);
            if ($ping) {
                $this->ping();
            }
        }
        return false;
    }

    public function ping(): void
    {
        $this->master->poll();
        $this->output->ping();
    }

    /** Shortest time between two pings, in seconds (default 1). */
    public function setPingInterval(float $seconds): void
    {
        $this->output->pingInterval = $seconds;
    }

    /** Seconds between the end of stdin and the SDK's exit(3); null: never. */
    public function setMasterGoneExit(?int $seconds): void
    {
        $this->masterGoneExit = $seconds;
    }

    /**
     * Sends a log frame; `level` is trace, debug, info, warn or error.
     *
     * @param array<string, mixed>|\stdClass $fields
     */
    public function log(string $level, string $message, array|\stdClass $fields = []): void
    {
        $this->master->poll();
        $this->output->write(Frames::log($level, $message, $fields));
    }

    /** Sends `hello` unless it was sent (the first line is always preceded by it). */
    public function hello(): void
    {
        $this->output->hello();
    }

    /** Sends `ready`: start-up is done. */
    public function ready(): void
    {
        $this->output->write(Frames::encode(['type' => 'ready']));
    }

    /** Sends a short free-text status. */
    public function status(string $text): void
    {
        $this->output->write(Frames::encode(['type' => 'status', 'text' => $text]));
    }

    /** Sends `ended` (once): the worker is about to exit on purpose. run() does it. */
    public function sendEnded(): void
    {
        if ($this->endedSent) {
            return;
        }
        $this->endedSent = true;
        $this->output->finishLine();
        $this->output->write(Frames::encode(['type' => 'ended']));
    }

    /**
     * Runs the work: sends `hello`, routes `echo` through the SDK, makes SIGTERM a
     * stop request, calls `$callback($this, $logger)` and sends `ended`. An
     * exception from the callback is sent as an error log, then the script exits 1.
     */
    public function run(callable $callback): void
    {
        $this->hello();
        $this->output->captureEcho();
        if (function_exists('pcntl_async_signals')) {
            pcntl_async_signals(true);
            pcntl_signal(SIGTERM, fn () => $this->stop());
        }
        try {
            $callback($this, $this->logger);
        } catch (\Throwable $e) {
            $this->log('error', $e->getMessage(), ['exception' => get_class($e), 'trace' => (string) $e]);
            $this->sendEnded();
            exit(self::FAILURE_EXIT_CODE);
        }
        $this->sendEnded();
    }

    /**
     * The jobs the master hands out (job pools, docs/protocol.md §12), holding at
     * most `$credit` at a time (asked for with `want`, topped up at half); ends on
     * `stop` or when the master is gone. Answer each with done() or fail(). PHP has
     * no threads: run more instances for more concurrency.
     *
     * @return \Generator<int, Job>
     */
    public function jobs(int $credit = self::DEFAULT_JOB_CREDIT): \Generator
    {
        $this->jobLimit = max($this->jobLimit, max(1, $credit));
        $this->askForJobs(true);
        while (!$this->mustStop()) {
            $next = $this->master->takeJob(1.0);
            if ($next === null) {
                $this->ping(); // waiting for work is not being hung
                continue;
            }
            $this->jobCredit = max(0, $this->jobCredit - 1);
            $this->jobsHeld++;
            yield $next[0] => new Job($next[0], $next[1], function (array $frame): void {
                $this->jobsHeld = max(0, $this->jobsHeld - 1);
                $lines = Frames::encode($frame);
                $more = $this->topUp(false);
                if ($more > 0) {
                    $lines .= Frames::encode(['type' => 'want', 'n' => $more]);
                }
                $this->output->write($lines);
            });
        }
    }

    /**
     * Runs `$callback(Job $job)` on every job until `stop`: its return value is the
     * result, a JobError (or any exception, retryable) the failure.
     */
    public function serve(callable $callback, int $credit = self::DEFAULT_JOB_CREDIT): void
    {
        foreach ($this->jobs($credit) as $job) {
            try {
                $result = $callback($job);
            } catch (JobError $e) {
                $job->fail($e->getMessage(), $e->retryable);
                continue;
            } catch (\Throwable $e) {
                $job->fail(get_class($e) . ': ' . $e->getMessage(), true);
                continue;
            }
            if (!$job->isAnswered()) {
                $job->done($result);
            }
        }
    }

    private function askForJobs(bool $now): void
    {
        $n = $this->topUp($now);
        if ($n > 0) {
            $this->output->write(Frames::encode(['type' => 'want', 'n' => $n]));
        }
    }

    private function topUp(bool $now): int
    {
        if ($this->master->reason() !== null || $this->jobLimit === 0) {
            return 0;
        }
        $have = $this->jobCredit + $this->jobsHeld;
        $free = max(0, $this->jobLimit - $have);
        if ($free === 0 || (!$now && $have > intdiv($this->jobLimit, 2))) {
            return 0;
        }
        $this->jobCredit += $free;
        return $free;
    }

    /**
     * Builds the handler from the environment, or prints why it cannot on stderr
     * and exits 2 (the other SDKs' behaviour; the constructor throws instead).
     */
    public static function fromEnv(): static
    {
        try {
            return new static();
        } catch (WorkerException $e) {
            $program = basename((string) ($_SERVER['argv'][0] ?? 'worker'));
            fwrite(STDERR, "{$program}: {$e->getMessage()}\n");
            exit(self::NOT_STARTED_BY_DISTARCH_EXIT_CODE);
        }
    }

    private function masterGone(): void
    {
        if ($this->masterGoneExit !== null && function_exists('pcntl_alarm')) {
            pcntl_async_signals(true);
            pcntl_signal(SIGALRM, static fn () => exit(self::MASTER_GONE_EXIT_CODE));
            pcntl_alarm(max(1, $this->masterGoneExit));
        }
    }
}
