<?php

declare(strict_types=1);

namespace Distarch\Worker\Tests;

use Distarch\Worker\MasterLink;
use PHPUnit\Framework\TestCase;

require_once __DIR__ . '/Support.php';

final class HandlerTest extends TestCase
{
    public function testHelloComesFirstAndOnce(): void
    {
        [$h, , $out] = Support::handler();
        $h->status('loading');
        $h->hello();
        $h->sendEnded();
        $h->sendEnded();
        $frames = Support::frames($out);
        self::assertSame(['hello', 'status', 'ended'], array_column($frames, 'type'));
        self::assertSame(['type' => 'hello', 'protocol' => 1, 'sdk' => 'distarch-worker-php', 'version' => '0.1.0'], $frames[0]);
    }

    public function testAStopFrameInPiecesStopsAndWakesSleep(): void
    {
        [$h, $master] = Support::handler();
        self::assertTrue($h->sleep(0.01, false));
        fwrite($master, "plain\n\x1e{\"type\":\"reload\"}\n\x1e{\"type\":\"st");
        self::assertFalse($h->mustStop());
        fwrite($master, "op\"}\n");
        $started = microtime(true);
        self::assertFalse($h->sleep(600));
        self::assertLessThan(30, microtime(true) - $started);
        self::assertSame(MasterLink::STOP_REQUESTED, $h->getStopReason());
    }

    public function testEndOfStdinMeansMasterGone(): void
    {
        [$h, $master] = Support::handler();
        fclose($master);
        self::assertFalse($h->sleep(600));
        self::assertSame(MasterLink::MASTER_GONE, $h->getStopReason());
    }

    public function testGroupCountFollowsTheMaster(): void
    {
        [$h, $master] = Support::handler();
        self::assertSame(3, $h->getGroupCount());
        fwrite($master, "\x1e{\"type\":\"group_count\",\"count\":8}\n");
        $h->sleep(0.05, false);
        self::assertSame(8, $h->getGroupCount());
        self::assertFalse($h->mustStop());
    }

    public function testPingIsRateLimited(): void
    {
        [$h, , $out] = Support::handler();
        $h->setPingInterval(3600);
        for ($i = 0; $i < 10000; ++$i) {
            $h->ping();
        }
        self::assertSame(['hello', 'ping'], array_column(Support::frames($out), 'type'));
        $h->setPingInterval(0);
        $h->ping();
        self::assertSame(['hello', 'ping', 'ping'], array_column(Support::frames($out), 'type'));
    }

    public function testTheLoggerSendsLevelsFieldsAndPlaceholders(): void
    {
        [$h, , $out] = Support::handler();
        $logger = $h->getLogger();
        $logger->warning('disk {disk} almost full', ['disk' => 'sda', 'free' => 3]);
        $logger->critical('boom');
        $logger->notice('note');
        $logger->debug('plain');
        $logger->error('failed', ['exception' => new \RuntimeException('bad')]);
        $frames = array_slice(Support::frames($out), 1);
        self::assertSame(['type' => 'log', 'level' => 'warn', 'message' => 'disk sda almost full', 'fields' => ['disk' => 'sda', 'free' => 3]], $frames[0]);
        self::assertSame(['error', 'info', 'debug', 'error'], array_column(array_slice($frames, 1), 'level'));
        self::assertStringContainsString('RuntimeException: bad', $frames[4]['fields']['exception']);
    }

    public function testEchoIsHeldUntilItsLineIsComplete(): void
    {
        [$h, , $out] = Support::handler();
        $output = (new \ReflectionProperty($h, 'output'))->getValue($h);
        $output->captureEcho();
        echo 'half ';
        $h->ready();
        echo "done\nnext";
        ob_end_clean();
        $lines = Support::lines($out);
        self::assertSame("\x1e{\"type\":\"ready\"}", $lines[1]);
        self::assertSame(['half done', 'next'], array_slice($lines, 2));
    }
}
