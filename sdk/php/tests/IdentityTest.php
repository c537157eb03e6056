<?php

declare(strict_types=1);

namespace Distarch\Worker\Tests;

use Distarch\Worker\Identity;
use Distarch\Worker\WorkerException;
use PHPUnit\Framework\TestCase;

require_once __DIR__ . '/Support.php';

final class IdentityTest extends TestCase
{
    public function testValidSetsGiveTheExpectedIdentity(): void
    {
        foreach (Support::vectors('env.json')['valid'] as $v) {
            $id = Identity::fromEnv($v['env']);
            $e = $v['expect'];
            self::assertSame(
                [$e['id'], $e['group'], $e['group_id'], $e['group_count'], $e['host'], $e['run_id'], $e['restart']],
                [$id->id, $id->group, $id->groupId, $id->groupCount, $id->host, $id->runId, $id->restart],
                $v['name'],
            );
        }
    }

    public function testBrokenSetsFailNamingTheVariable(): void
    {
        foreach (Support::vectors('env.json')['broken'] as $v) {
            try {
                Identity::fromEnv($v['env']);
                self::fail("{$v['name']}: accepted");
            } catch (WorkerException $e) {
                self::assertStringContainsString($v['names'], $e->getMessage(), $v['name']);
            }
        }
    }

    public function testParamsRoundTripExactly(): void
    {
        $env = Support::ENV;
        foreach (Support::vectors('params.json', false)->params as $v) {
            $json = json_encode($v->params, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION);
            $env['DISTARCH_PARAMS'] = (string) $json;
            $id = Identity::fromEnv($env);
            self::assertEquals($v->params, $id->rawParams, $v->name);
            self::assertSame($json, json_encode($id->rawParams, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION), $v->name);
        }
    }

    public function testNoIdMeansNotStartedByDistarch(): void
    {
        $this->expectExceptionMessage('not started by distarch: DISTARCH_ID is not set');
        Identity::fromEnv([]);
    }
}
