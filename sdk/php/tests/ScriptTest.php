<?php

declare(strict_types=1);

namespace Distarch\Worker\Tests;

use PHPUnit\Framework\TestCase;

require_once __DIR__ . '/Support.php';

/** Whole scripts as processes: exit codes, the ported script1.php, SIGTERM. */
final class ScriptTest extends TestCase
{
    /**
     * @param array<string, string> $env
     *
     * @return array{0: resource, 1: resource, 2: resource, 3: resource}
     */
    private static function start(string $code, array $env, string ...$args): array
    {
        $file = tempnam(sys_get_temp_dir(), 'distarch-php-');
        file_put_contents($file, $code);
        register_shutdown_function(static fn () => @unlink($file));
        $base = array_filter(getenv(), static fn ($k) => !str_starts_with((string) $k, 'DISTARCH_'), ARRAY_FILTER_USE_KEY);
        $cmd = array_merge([PHP_BINARY, '-d', 'auto_prepend_file=' . dirname(__DIR__) . '/autoload.php', $file], $args);
        $proc = proc_open($cmd, [['pipe', 'r'], ['pipe', 'w'], ['pipe', 'w']], $pipes, null, $base + $env);
        if ($proc === false) {
            throw new \RuntimeException('cannot start php');
        }
        return [$proc, $pipes[0], $pipes[1], $pipes[2]];
    }

    /** @param resource $stream */
    private static function readUntil($stream, string $needle): string
    {
        $seen = '';
        while (!str_contains($seen, $needle)) {
            $line = fgets($stream);
            if ($line === false) {
                self::fail("never saw {$needle} in: {$seen}");
            }
            $seen .= $line;
        }
        return $seen;
    }

    public function testThePortedScript1RunsAndStopsCleanly(): void
    {
        $script = (string) file_get_contents(dirname(__DIR__, 3) . '/examples/php/script1.php');
        [$proc, $in, $out] = self::start($script, Support::ENV, 'distarch');
        $seen = self::readUntil($out, "Hello World!\n");
        self::assertStringStartsWith("\x1e{\"type\":\"hello\",\"protocol\":1,\"sdk\":\"distarch-worker-php\"", $seen);
        self::assertStringContainsString("My ID : 4\nMy Group ID : 2\nThere are a total of 3 processes in my group named \"first\"\n", $seen);
        fwrite($in, "\x1e{\"type\":\"stop\"}\n");
        $rest = (string) stream_get_contents($out);
        self::assertStringEndsWith("\x1e{\"type\":\"ended\"}\n", $rest);
        self::assertSame(0, proc_close($proc));
    }

    public function testAnExceptionExits1WithAnErrorFrame(): void
    {
        [$proc, , $out] = self::start('<?php (new Distarch\Worker\Handler())->run(function () { throw new RuntimeException("bad input"); });', Support::ENV);
        $text = (string) stream_get_contents($out);
        self::assertStringContainsString('"level":"error","message":"bad input"', $text);
        self::assertStringEndsWith("\x1e{\"type\":\"ended\"}\n", $text);
        self::assertSame(1, proc_close($proc));
    }

    public function testFromEnvExits2NamingTheVariable(): void
    {
        $env = Support::ENV;
        unset($env['DISTARCH_HOST']);
        [$proc, , $out, $err] = self::start('<?php Distarch\Worker\Handler::fromEnv();', $env);
        self::assertSame('', stream_get_contents($out));
        self::assertStringContainsString('not started by distarch: DISTARCH_HOST is not set', (string) stream_get_contents($err));
        self::assertSame(2, proc_close($proc));
    }

    public function testSigtermIsAStopRequest(): void
    {
        $code = '<?php $h = new Distarch\Worker\Handler(); $h->run(function ($h) { $h->ready(); while ($h->sleep(3600)) {} echo "stopping: " . $h->getStopReason() . "\n"; });';
        [$proc, $in, $out] = self::start($code, Support::ENV);
        self::readUntil($out, '"ready"');
        proc_terminate($proc, SIGTERM);
        $rest = (string) stream_get_contents($out);
        self::assertStringContainsString("stopping: stop requested\n", $rest);
        self::assertSame(0, proc_close($proc)); // closes stdin only now: the stop came from SIGTERM
        unset($in);
    }
}
