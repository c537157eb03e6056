<?php

declare(strict_types=1);

namespace Distarch\Worker\Tests;

use Distarch\Worker\Handler;

/** Shared helpers: the repository's vectors, a handler on a socket pair and a memory stream. */
final class Support
{
    public const ENV = [
        'DISTARCH_PROTOCOL' => '1',
        'DISTARCH_RUN_ID' => 'r1x9',
        'DISTARCH_ID' => '4',
        'DISTARCH_GROUP' => 'first',
        'DISTARCH_GROUP_ID' => '2',
        'DISTARCH_GROUP_COUNT' => '3',
        'DISTARCH_HOST' => 'localhost',
        'DISTARCH_RESTART' => '0',
        'DISTARCH_PARAMS' => '{"message":"Hello World!","n":7}',
    ];

    public static function vectors(string $name, bool $assoc = true): mixed
    {
        $path = dirname(__DIR__, 3) . '/conformance/vectors/' . $name;
        return json_decode((string) file_get_contents($path), $assoc, 512, JSON_THROW_ON_ERROR);
    }

    /**
     * A handler whose stdin is one end of a socket pair (the test writes to the
     * other) and whose stdout is a memory stream.
     *
     * @return array{0: Handler, 1: resource, 2: resource}
     */
    public static function handler(): array
    {
        $pair = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
        if ($pair === false) {
            throw new \RuntimeException('no socket pair');
        }
        $out = fopen('php://memory', 'w+');
        if ($out === false) {
            throw new \RuntimeException('no memory stream');
        }
        $handler = new Handler(self::ENV, $pair[0], $out);
        $handler->setMasterGoneExit(null);
        return [$handler, $pair[1], $out];
    }

    /**
     * The lines written so far.
     *
     * @param resource $out
     *
     * @return list<string>
     */
    public static function lines($out): array
    {
        rewind($out);
        $text = (string) stream_get_contents($out);
        fseek($out, 0, SEEK_END);
        $lines = explode("\n", $text);
        array_pop($lines);
        return $lines;
    }

    /**
     * The frames written so far, decoded.
     *
     * @param resource $out
     *
     * @return list<array<string, mixed>>
     */
    public static function frames($out): array
    {
        $frames = [];
        foreach (self::lines($out) as $line) {
            if (str_starts_with($line, "\x1e")) {
                $frames[] = json_decode(substr($line, 1), true, 512, JSON_THROW_ON_ERROR);
            }
        }
        return $frames;
    }
}
