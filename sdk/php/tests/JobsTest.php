<?php

declare(strict_types=1);

namespace Distarch\Worker\Tests;

use Distarch\Worker\Job;
use Distarch\Worker\JobError;
use PHPUnit\Framework\TestCase;

final class JobsTest extends TestCase
{
    public function testServeAsksForCreditAndAnswersEachJobOnce(): void
    {
        [$h, $master, $out] = Support::handler();
        fwrite($master, "\x1e{\"type\":\"job\",\"id\":1,\"payload\":\"abc\"}\n");
        fwrite($master, "\x1e{\"type\": \"job\", \"id\": 2, \"payload\": {\"bad\": true}}\n");
        fwrite($master, "\x1e{\"type\":\"job\",\"id\":3,\"payload\":null}\n");
        $seen = [];
        $h->serve(function (Job $job) use (&$seen, $master): mixed {
            $seen[] = $job->id;
            if (count($seen) === 3) {
                fwrite($master, "\x1e{\"type\":\"stop\"}\n");
            }
            if ($job->id === 2) {
                throw new JobError('bad input', false);
            }
            if ($job->id === 3) {
                throw new \RuntimeException('boom');
            }
            return strlen((string) $job->payload);
        }, 4);
        $frames = Support::frames($out);
        self::assertSame(['type' => 'want', 'n' => 4], $frames[1], 'credit first (after hello)');
        $answers = array_values(array_filter($frames, fn ($f) => in_array($f['type'], ['done', 'failed'], true)));
        self::assertSame(['type' => 'done', 'id' => 1, 'result' => 3], $answers[0]);
        self::assertSame(['type' => 'failed', 'id' => 2, 'error' => 'bad input', 'retryable' => false], $answers[1]);
        self::assertSame(3, $answers[2]['id']);
        self::assertTrue($answers[2]['retryable']);
        self::assertStringContainsString('boom', $answers[2]['error']);
        self::assertCount(3, $answers);
        self::assertLessThanOrEqual(3, count($seen), 'no job after stop');
    }

    public function testAJobIsAnsweredOnce(): void
    {
        [$h, $master] = Support::handler();
        fwrite($master, "\x1e{\"type\":\"job\",\"id\":5,\"payload\":[1]}\n");
        foreach ($h->jobs(1) as $job) {
            self::assertSame([1], $job->payload);
            $job->done();
            $this->expectException(\LogicException::class);
            $job->fail('again');
        }
    }
}
