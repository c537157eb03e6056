<?php

// The PHP SDK's side of bench/sdk.sh: `params.frames` log frames with two fields,
// as fast as it can, then ends (0 frames: start time only).

declare(strict_types=1);

require __DIR__ . '/../../sdk/php/autoload.php';

$handler = new Distarch\Worker\Handler();
$handler->run(function (Distarch\Worker\Handler $h): void {
    $h->ready();
    $frames = (int) ($h->getParams()['frames'] ?? 0);
    for ($i = 0; $i < $frames; ++$i) {
        $h->log('info', 'frame', ['i' => $i, 'sdk' => 'php']);
    }
});
