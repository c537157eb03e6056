<?php

declare(strict_types=1);

namespace Distarch\Worker\Tests;

use Distarch\Worker\Frames;
use PHPUnit\Framework\TestCase;

require_once __DIR__ . '/Support.php';

final class FramesTest extends TestCase
{
    public function testWorkerFramesAreEncodedByteExact(): void
    {
        foreach (Support::vectors('frames.json', false)->worker as $v) {
            self::assertSame($v->line . "\n", Frames::encode($v->frame), $v->name);
        }
    }

    public function testMasterLinesAreReadAsTheVectorsSay(): void
    {
        foreach (Support::vectors('frames.json')['master'] as $v) {
            $got = Frames::parseMasterLine($v['line']);
            $want = match ($v['expect']['kind']) {
                'ignored' => null,
                'stop' => ['stop'],
                'group_count' => ['group_count', $v['expect']['count']],
            };
            self::assertSame($want, $got, $v['name']);
        }
    }

    public function testLogLevelsAreChecked(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        Frames::log('fatal', 'x');
    }

    public function testEmptyFieldsAreLeftOut(): void
    {
        self::assertSame("\x1e{\"type\":\"log\",\"level\":\"info\",\"message\":\"m\"}\n", Frames::log('info', 'm', []));
    }
}
