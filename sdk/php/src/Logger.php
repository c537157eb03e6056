<?php

declare(strict_types=1);

namespace Distarch\Worker;

use Psr\Log\AbstractLogger;
use Psr\Log\LogLevel;

/**
 * PSR-3 logger whose records become log frames: the context becomes the frame's
 * fields, `{key}` placeholders in the message are replaced by context values, an
 * `exception` in the context is sent as text. emergency, alert, critical and error
 * are `error`; warning is `warn`; notice and info are `info`; debug is `debug`.
 */
final class Logger extends AbstractLogger
{
    private const LEVELS = [
        LogLevel::EMERGENCY => 'error',
        LogLevel::ALERT => 'error',
        LogLevel::CRITICAL => 'error',
        LogLevel::ERROR => 'error',
        LogLevel::WARNING => 'warn',
        LogLevel::NOTICE => 'info',
        LogLevel::INFO => 'info',
        LogLevel::DEBUG => 'debug',
        'trace' => 'trace',
        'warn' => 'warn',
    ];

    public function __construct(private readonly Handler $handler)
    {
    }

    /**
     * @param mixed                $level
     * @param string|\Stringable   $message
     * @param array<string, mixed> $context
     */
    public function log($level, $message, array $context = []): void
    {
        $name = is_string($level) ? strtolower($level) : '';
        if (!isset(self::LEVELS[$name])) {
            throw new \Psr\Log\InvalidArgumentException('unknown log level `' . (is_scalar($level) ? $level : gettype($level)) . '`');
        }
        $text = (string) $message;
        if (str_contains($text, '{')) {
            $replace = [];
            foreach ($context as $key => $value) {
                if (is_scalar($value) || $value instanceof \Stringable) {
                    $replace['{' . $key . '}'] = (string) $value;
                }
            }
            $text = strtr($text, $replace);
        }
        if (isset($context['exception']) && $context['exception'] instanceof \Throwable) {
            $context['exception'] = (string) $context['exception'];
        }
        $this->handler->log(self::LEVELS[$name], $text, $context);
    }
}
