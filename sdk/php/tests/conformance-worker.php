<?php

// The PHP SDK's conformance worker: what `distarch-conformance` runs to check the
// SDK (docs/conformance.md describes the contract).

declare(strict_types=1);

require __DIR__ . '/../autoload.php';

use Distarch\Worker\Frames;
use Distarch\Worker\Handler;
use Distarch\Worker\Job;
use Distarch\Worker\JobError;
use Psr\Log\LoggerInterface;

$handler = Handler::fromEnv();
$handler->run(function (Handler $handler, LoggerInterface $logger): void {
    $seen = $handler->getGroupCount(); // before `ready`: the runner may resize the group right after it
    $params = $handler->getParams();
    $handler->log('info', 'identity', [
        'id' => $handler->getId(), 'group' => $handler->getGroupName(), 'group_id' => $handler->getGroupId(),
        'group_count' => $seen, 'host' => $handler->getHost(), 'run_id' => $handler->getRunId(),
        'restart' => $handler->getRestart(), 'params' => $handler->getRawParams(),
    ]);
    $handler->ready();
    switch ($params['conformance'] ?? null) {
        case 'levels':
            foreach (Frames::LEVELS as $i => $level) {
                $handler->log($level, "level {$level}", ['n' => $i + 1]);
            }
            break;
        case 'status':
            $handler->status((string) ($params['text'] ?? ''));
            break;
        case 'ping':
            while (!$handler->mustStop()) {
                $handler->ping();
            }
            break;
        case 'jobs':
            // Job pools: echo each payload; fail (not retryable) one with `fail`.
            $handler->serve(function (Job $job): mixed {
                if ($job->payload instanceof \stdClass && isset($job->payload->fail)) {
                    throw new JobError((string) $job->payload->fail, false);
                }
                return $job->payload;
            });
            break;
        case 'group_count':
            while ($handler->sleep(0.02, false)) {
                if ($handler->getGroupCount() !== $seen) {
                    $seen = $handler->getGroupCount();
                    $logger->info('group_count', ['count' => $seen]);
                }
            }
            break;
    }
    while ($handler->sleep(3600, false)) {
    }
});
