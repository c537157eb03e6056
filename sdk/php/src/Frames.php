<?php

declare(strict_types=1);

namespace Distarch\Worker;

/**
 * Encoding worker frames and reading master frames (docs/protocol.md §3-§6).
 */
final class Frames
{
    public const MARKER = "\x1e";
    public const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

    /** Flags that give the same bytes as the other SDKs (conformance/vectors/frames.json). */
    private const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
        | JSON_UNESCAPED_LINE_TERMINATORS | JSON_INVALID_UTF8_SUBSTITUTE
        | JSON_PRESERVE_ZERO_FRACTION | JSON_PARTIAL_OUTPUT_ON_ERROR;

    /**
     * One frame as one line: the marker, compact JSON, "\n". Members are written in
     * the order given (`type` first as the SDK builds them).
     *
     * @param array<string, mixed>|\stdClass $frame
     */
    public static function encode(array|\stdClass $frame): string
    {
        $json = json_encode($frame, self::JSON_FLAGS);
        if ($json === false) {
            // Only reachable with values json_encode cannot represent at all.
            $json = '{"type":"log","level":"error","message":"distarch-worker: a frame could not be encoded"}';
        }
        return self::MARKER . $json . "\n";
    }

    /**
     * A log frame; `fields` omitted when empty.
     *
     * @param array<string, mixed>|\stdClass $fields
     */
    public static function log(string $level, string $message, array|\stdClass $fields = []): string
    {
        if (!in_array($level, self::LEVELS, true)) {
            throw new \InvalidArgumentException("unknown log level `{$level}` (expected trace, debug, info, warn or error)");
        }
        $frame = ['type' => 'log', 'level' => $level, 'message' => $message];
        if ($fields instanceof \stdClass ? get_object_vars($fields) !== [] : $fields !== []) {
            $frame['fields'] = $fields;
        }
        return self::encode($frame);
    }

    /**
     * What a line from the master means: ['stop'], ['group_count', n], or null for
     * anything a worker ignores (plain text, unknown or malformed frames).
     *
     * @return null|array{0: string, 1?: int}
     */
    public static function parseMasterLine(string $line): ?array
    {
        $line = rtrim($line, "\n");
        if (str_ends_with($line, "\r")) {
            $line = substr($line, 0, -1);
        }
        if (!str_starts_with($line, self::MARKER)) {
            return null;
        }
        $body = substr($line, 1);
        if (!str_starts_with(ltrim($body), '{')) {
            return null;
        }
        $frame = json_decode($body, true);
        if (!is_array($frame) || !isset($frame['type'])) {
            return null;
        }
        if ($frame['type'] === 'stop') {
            return ['stop'];
        }
        if ($frame['type'] === 'group_count' && isset($frame['count']) && is_int($frame['count']) && $frame['count'] >= 0) {
            return ['group_count', $frame['count']];
        }
        return null;
    }
}
